"""The native loops (``nnlab/ops/_kernels.c``) against the ops' torch code: the same formulas, so the same
values and gradients, for every layout the kernels take (contiguous, channels-last, (N, C) features)."""

from __future__ import annotations

import pytest
import torch
from _ops_helpers import TOL, _one_thread, channels_last  # noqa: F401 (autouse fixture)

from nnlab import ops
from nnlab.ops import _native

pytestmark = pytest.mark.skipif(_native.load() is None, reason="no C compiler: only the torch path exists")


def assert_close_scaled(ours, ref, what):
    """As _ops_helpers', but relative to the reference's scale for float64 too: gradients of γ and β are sums
    over up to 10⁶ elements, which the kernels add in a different order than torch."""
    err = (ours.double() - ref.double()).abs().max().item()
    assert err <= TOL[ref.dtype] * max(1.0, ref.abs().max().item()), f"{what}: max abs error {err:.3g}"


def _both(fn, inputs, threads=1):
    """fn's output and input gradients, once through the kernels and once through the torch code."""
    out = []
    g = None
    for use_kernel in (True, False):
        xs = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
        torch.set_num_threads(threads)
        if use_kernel:
            y = fn(*xs)
        else:
            with _native.disabled():
                y = fn(*xs)
        g = torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=y.dtype) if g is None else g
        if use_kernel:
            grads = torch.autograd.grad(y, [t for t in xs if t.requires_grad], g)
        else:
            with _native.disabled():
                grads = torch.autograd.grad(y, [t for t in xs if t.requires_grad], g)
        out.append((y, grads))
    (ya, ga), (yb, gb) = out
    assert_close_scaled(ya, yb, "forward")
    for i, (a, b) in enumerate(zip(ga, gb)):
        assert_close_scaled(a, b, f"grad #{i}")
    return ya


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(256, 40), (6, 5, 9, 7), (4, 3, 5, 2, 3), (300, 4, 32, 32)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_batch_norm_kernel_equals_torch_path(dtype, shape, layout, training, threads):
    if layout == "channels_last" and len(shape) != 4:
        pytest.skip("channels-last is a 4-D layout")
    g = torch.Generator().manual_seed(1)
    C = shape[1]
    x = torch.randn(*shape, generator=g, dtype=dtype) * 3 + 5
    x = channels_last(x) if layout == "channels_last" else x
    w = (torch.rand(C, generator=g, dtype=dtype) + 0.5).requires_grad_()
    b = torch.randn(C, generator=g, dtype=dtype).requires_grad_()
    rm, rv = torch.randn(C, dtype=dtype, generator=g), torch.rand(C, dtype=dtype, generator=g) + 0.5
    rms = []

    def fn(x, w, b):
        r = (rm.clone(), rv.clone())
        rms.append(r)
        return ops.batch_norm(x, *r, w, b, training)

    _both(fn, [x.requires_grad_(), w, b], threads)
    for a, ref in zip(rms[0], rms[1]):  # running statistics updated identically
        assert_close_scaled(a, ref, "running stats")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 4, 9, 7), (16, 40, 32, 32)])
@pytest.mark.parametrize("k", [2, 3, (2, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_tiled_pools_kernel_equals_torch_path(dtype, shape, k, layout):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    x = channels_last(x) if layout == "channels_last" else x
    x.requires_grad_()
    for threads in (1, 2):
        _both(lambda x: ops.max_pool2d(x, k), [x], threads)
        _both(lambda x: ops.avg_pool2d(x, k), [x], threads)
        _both(lambda x: ops.avg_pool2d(x, k, divisor_override=3), [x], threads)
        for p in (1.0, 2.0, 3.0, 0.7):
            _both(lambda x, p=p: ops.lp_pool2d(x, p, k), [x], threads)


def test_max_pool_kernel_ties_and_nan_like_torch_path():
    x = torch.randint(0, 3, (2, 3, 8, 8)).float()
    x[0, 0, 0, 1] = float("nan")
    x[0, 0, 1, 0] = float("nan")
    for xx in (x, channels_last(x)):
        y, idx = ops.max_pool2d(xx, 2, return_indices=True)
        with _native.disabled():
            y2, idx2 = ops.max_pool2d(xx, 2, return_indices=True)
        assert torch.equal(idx, idx2) and torch.allclose(y, y2, equal_nan=True)
    _both(lambda x: ops.max_pool2d(x, 2), [x[:, :, 2:].clone().requires_grad_()])


def test_learnable_p_through_the_kernel():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    _both(lambda x, p: ops.lp_pool2d(x, p, 2), [x, p])
