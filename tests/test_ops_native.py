"""The native loops (``nnlab/ops/_kernels.c``, ``_conv_kernels.c``) against the ops' torch code: the same formulas,
so the same values and gradients, for every layout the kernels take (contiguous, channels-last, (N, C) features)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _ops_helpers import TOL, _one_thread, channels_last  # noqa: F401 (autouse fixture)

from nnlab import ops
from nnlab.ops import _native
from nnlab.ops import conv as conv_ops

pytestmark = pytest.mark.skipif(_native.load() is None, reason="no C compiler: only the torch path exists")


def assert_close_scaled(ours, ref, what):
    """As _ops_helpers', but relative to the reference's scale for float64 too: gradients of γ and β are sums
    over up to 10⁶ elements, which the kernels add in a different order than torch."""
    err = (ours.double() - ref.double()).abs().max().item()
    assert err <= TOL[ref.dtype] * max(1.0, ref.abs().max().item()), f"{what}: max abs error {err:.3g}"


# Thread settings of the kernel side: one thread, torch's OpenMP team of two, or two Python threads (the split
# a build without OpenMP uses).
THREADS = [1, 2, "2 python"]


def _thread_mode(threads):
    """torch.set_num_threads for an entry of THREADS, and a context for the kernels' side of it."""
    torch.set_num_threads(int(str(threads).split()[0]))
    return _native.python_threads() if isinstance(threads, str) else contextlib.nullcontext()


def _both(fn, inputs, threads=1):
    """fn's output and input gradients, once through the kernels and once through the torch code."""
    out = []
    g = None
    for use_kernel in (True, False):
        xs = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
        with _thread_mode(threads):
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
# (1031, 70): large enough for two threads, so (N, C) features take the rows-split team (bn_rows_*_team) at 2,
# with odd rows and channels split unevenly between the threads
@pytest.mark.parametrize("shape", [(256, 40), (1031, 70), (6, 5, 9, 7), (4, 3, 5, 2, 3), (300, 4, 32, 32)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("threads", THREADS)
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
@pytest.mark.parametrize("threads", THREADS)
def test_batch_norm_rows_team_centres_a_constant_channel_exactly(dtype, threads):
    """Rows split over the team's threads, a constant channel still gives mean = the constant and exact zeros
    (derivations §1.1), whichever thread's rows hold which values; the team is what runs at 2 threads."""
    x = torch.randn(1031, 70, generator=torch.Generator().manual_seed(2), dtype=dtype)
    x[:, 3] = 1 / 3
    x[:, 69] = -7.25
    with _thread_mode(threads):
        if threads == 2:
            assert _native.team_threads(1031, x.numel()) == 2
        rm, rv = torch.zeros(70, dtype=dtype), torch.ones(70, dtype=dtype)
        y = ops.batch_norm(x, rm, rv, None, None, training=True)
    assert torch.equal(y[:, 3], torch.zeros(1031, dtype=dtype)) and torch.equal(
        y[:, 69], torch.zeros(1031, dtype=dtype)
    )
    assert torch.equal(rv[[3, 69]], torch.full((2,), 0.9, dtype=dtype))  # variance exactly 0: 0.9 * 1 + 0.1 * 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 4, 9, 7), (16, 40, 32, 32)])
@pytest.mark.parametrize("k", [2, 3, (2, 3)])
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_tiled_pools_kernel_equals_torch_path(dtype, shape, k, layout):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(*shape, generator=g, dtype=dtype)
    x = channels_last(x) if layout == "channels_last" else x
    x.requires_grad_()
    for threads in THREADS:
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
    ties = x[:, :, 2:].clone()  # each window's gradient goes to its first maximum, in either layout
    _both(lambda x: ops.max_pool2d(x, 2), [ties.requires_grad_()])
    _both(lambda x: ops.max_pool2d(x, 2), [channels_last(ties).requires_grad_()])


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_max_pool_kernel_infinities_nans_and_ties_like_torch_path(layout):
    """Windows drawn from {0, ±1, ±inf, NaN, 2, 2}: the channels-last 2 x 2 loop takes its NaN-free chain of
    comparisons unless a window's sum is NaN (a NaN, or inf - inf), and both must pick torch's position."""
    g = torch.Generator().manual_seed(0)
    values = torch.tensor([0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"), 2.0, 2.0])
    for _ in range(50):
        x = values[torch.randint(0, len(values), (2, 17, 4, 6), generator=g)]
        x = channels_last(x) if layout == "channels_last" else x
        y, idx = ops.max_pool2d(x, 2, return_indices=True)
        with _native.disabled():
            y2, idx2 = ops.max_pool2d(x, 2, return_indices=True)
        assert torch.equal(idx, idx2) and torch.allclose(y, y2, equal_nan=True)


def test_learnable_p_through_the_kernel():
    x = torch.rand(2, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    p = torch.tensor(2.5, dtype=torch.float64, requires_grad=True)
    _both(lambda x, p: ops.lp_pool2d(x, p, 2), [x, p])


# conv2d's direct convolution (_conv_kernels.c): (N, Cin, H, W, Cout, kernel, padding, dilation). Channel counts
# that are not multiples of the vector width (Cout = 10, 17, 40; Cin = 3, 5, 20, 70, which is dX's output), more
# than one block of output-channel vectors (Cout = 80; dX of Cin = 70), 1 × 1, rectangular and dilated kernels, a
# 5 × 5, rows shorter than a tile (W = 5, 6) and batch 1; rows of 16 or more contiguous pixels with 16 or more
# channels take the blocked transpose into NHWC, with remainders (W = 19, C = 20); the last case is large enough
# that two threads share the padding copy too.
CONV_CASES = [
    (1, 3, 7, 7, 10, (3, 3), (1, 1), (1, 1)),
    (2, 5, 9, 6, 17, (3, 2), (1, 0), (2, 1)),
    (3, 20, 12, 19, 40, (1, 1), (0, 0), (1, 1)),
    (2, 16, 11, 9, 80, (5, 5), (2, 2), (1, 1)),
    (2, 70, 6, 5, 24, (3, 3), (1, 1), (1, 1)),
    (4, 32, 16, 16, 64, (3, 3), (1, 1), (1, 1)),
    (2, 64, 48, 40, 24, (3, 3), (1, 1), (1, 1)),
]


def _conv_inputs(case, layout, bias=True):
    N, C, H, W, O, (kh, kw), _, _ = case
    g = torch.Generator().manual_seed(5)
    x = torch.randn(N, C, H, W, generator=g)
    x = channels_last(x) if layout == "channels_last" else x
    w = torch.randn(O, C, kh, kw, generator=g) / (C * kh * kw) ** 0.5
    b = torch.randn(O, generator=g) if bias else None
    return [t.requires_grad_() for t in (x, w, b) if t is not None]


def _conv_error_bounds(x, w, b, g, padding, dilation):
    """Each float32 result is a sum of n products; in any order of additions, with or without fused
    multiply-adds, its error is at most γ = (n + 1)·u·Σ|terms| (u = 2⁻²⁴; the +1 for rounding the products
    and storing the result). Σ|terms| is the same convolution on absolute values: forward conv(|x|, |w|) + |b|,
    its gradients under |g| give the dX and dW sums, Σ|g| the db sum."""
    xa, wa = x.detach().double().abs().requires_grad_(), w.detach().double().abs().requires_grad_()
    ba = None if b is None else b.detach().double().abs()
    ya = F.conv2d(xa, wa, ba, padding=padding, dilation=dilation)
    dxa, dwa = torch.autograd.grad(ya, (xa, wa), g.double().abs())
    O, C, kh, kw = w.shape
    N, _, Ho, Wo = ya.shape
    u = 2.0**-24
    bounds = [(C * kh * kw + 2) * u * ya, (O * kh * kw + 1) * u * dxa, (N * Ho * Wo + 1) * u * dwa]
    if b is not None:
        bounds.append((N * Ho * Wo + 1) * u * g.double().abs().sum((0, 2, 3)))
    return bounds


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("threads", THREADS)
def test_conv2d_kernel_against_torch_path_and_float64_conv(case, layout, threads):
    _, _, _, _, _, _, p, d = case
    inputs = _conv_inputs(case, layout, bias=case[4] != 40)
    x, w, b = inputs[0], inputs[1], inputs[2] if len(inputs) == 3 else None
    assert conv_ops._native_takes(x, w, b, (1, 1), p, d, 1)

    def fn(*t):
        return ops.conv2d(t[0], t[1], t[2] if len(t) == 3 else None, padding=p, dilation=d)

    y = _both(fn, inputs, threads)  # the kernel against the matrix-product code, both float32
    # y in F.conv2d's memory format: contiguous (a .view() works) or channels-last like x.
    assert y.is_contiguous(memory_format=_native.memory_format(x))

    # Against float64 torch on the same float32 values, within the worst-case rounding bound of each sum.
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(6))
    xs = [t.detach().clone().requires_grad_() for t in inputs]
    with _thread_mode(threads):
        ours = [fn(*xs), *torch.autograd.grad(fn(*xs), xs, g)]
    ref64 = [t.detach().double().requires_grad_() for t in inputs]
    yr = F.conv2d(ref64[0], ref64[1], ref64[2] if b is not None else None, padding=p, dilation=d)
    refs = [yr, *torch.autograd.grad(yr, ref64, g.double())]
    for i, (a, r, bound) in enumerate(zip(ours, refs, _conv_error_bounds(x, w, b, g, p, d))):
        err = (a.double() - r).abs()
        assert (err <= bound).all(), f"#{i}: error {err.max():.3g} above its bound at {(err > bound).sum()} entries"


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_conv2d_kernel_with_expanded_output_gradient(layout):
    """y.sum().backward() hands the kernel a dY of stride 0: read through its strides, not as a dense map."""
    inputs = _conv_inputs(CONV_CASES[1], layout)
    _both(lambda x, w, b: ops.conv2d(x, w, b, padding=(1, 0), dilation=(2, 1)).sum(), inputs, threads=2)


@pytest.mark.parametrize(
    "dtype, stride, padding, groups",
    [(torch.float64, 1, 1, 1), (torch.float32, 2, 1, 1), (torch.float32, 1, 1, 2), (torch.float32, 1, 3, 1)],
)
def test_conv2d_kernel_leaves_other_cases_to_the_torch_code(dtype, stride, padding, groups):
    """float64, stride ≠ 1, groups and padding past the kernel's reach run the matrix products (tested in
    test_ops_conv.py against torch)."""
    x, w = torch.randn(2, 4, 8, 8, dtype=dtype), torch.randn(4, 4 // groups, 3, 3, dtype=dtype)
    assert not conv_ops._native_takes(x, w, None, (stride, stride), (padding, padding), (1, 1), groups)


def test_conv2d_kernel_takes_cpu_tensors_only():
    """The kernels read raw pointers: a weight or bias elsewhere (here 'meta') is the torch code's to reject."""
    x, w, b = torch.randn(2, 4, 8, 8), torch.randn(4, 4, 3, 3), torch.randn(4)
    assert conv_ops._native_takes(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    assert not conv_ops._native_takes(x, w.to("meta"), b, (1, 1), (1, 1), (1, 1), 1)
    assert not conv_ops._native_takes(x, w, b.to("meta"), (1, 1), (1, 1), (1, 1), 1)


def test_conv2d_kernel_leaves_large_kernels_without_padding_to_the_torch_code():
    """A 3 × 30 kernel over 10 × 30 maps has one output column: dX through dY padded by 29 columns would multiply
    mostly zeros. 'same' and small 'valid' layers stay on the kernel."""
    x = torch.randn(2, 4, 10, 30)
    assert not conv_ops._native_takes(x, torch.randn(5, 4, 3, 30), None, (1, 1), (1, 0), (1, 1), 1)
    assert conv_ops._native_takes(x, torch.randn(5, 4, 3, 3), None, (1, 1), (0, 0), (1, 1), 1)
    assert conv_ops._native_takes(x, torch.randn(5, 4, 5, 5), None, (1, 1), (2, 2), (1, 1), 1)
    w = torch.randn(5, 4, 3, 30, requires_grad=True)
    xg = x.clone().requires_grad_()
    y = _both(lambda x, w: ops.conv2d(x, w, padding=(1, 0)), [xg, w])
    assert y.shape == (2, 5, 10, 1)


def test_conv2d_kernel_never_calls_torch_convolution(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("torch convolution called")

    for name in ("conv2d", "convolution", "conv_transpose2d"):
        monkeypatch.setattr(torch, name, boom, raising=False)
        monkeypatch.setattr(F, name, boom, raising=False)
    x, w, b = _conv_inputs(CONV_CASES[0], "contiguous")
    assert conv_ops._native_takes(x, w, b, (1, 1), (1, 1), (1, 1), 1)
    ops.conv2d(x, w, b, padding=1).sum().backward()
    assert x.grad is not None and w.grad is not None and b.grad is not None


@pytest.mark.parametrize("threads", THREADS)
def test_conv2d_kernel_stacked_layers_share_scratch(threads):
    """Two layers of different sizes in one graph: each backward reuses the thread's scratch for its padded dY."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 6, 20, 18, generator=g).requires_grad_()
    w1 = (torch.randn(40, 6, 3, 3, generator=g) / 7).requires_grad_()
    w2 = (torch.randn(5, 40, 5, 5, generator=g) / 30).requires_grad_()

    def net(x, w1, w2):
        return ops.conv2d(torch.tanh(ops.conv2d(x, w1, padding=1)), w2, padding=2)

    _both(net, [x, w1, w2], threads)


def test_kernels_run_in_torchs_openmp_pool():
    """With OpenMP the kernels' library resolves libgomp to the copy torch loaded: one runtime, one pool of
    threads, not a second set competing with torch's for the cores. (Other wheels, scikit-learn's for one, bring
    renamed copies of their own; what matters is the one our library is bound to.)"""
    import ctypes

    lib = _native.load()
    if not _native._uses_openmp(lib):
        pytest.skip("the kernels were built without OpenMP (they split the work over Python threads)")
    torch_gomp = next(Path(torch.__file__).parent.joinpath("lib").glob("libgomp*"), None)
    if torch_gomp is None:
        pytest.skip("this torch build brings no libgomp of its own")
    ours = ctypes.cast(lib.omp_get_num_threads, ctypes.c_void_p).value
    torchs = ctypes.cast(ctypes.CDLL(str(torch_gomp)).omp_get_num_threads, ctypes.c_void_p).value
    assert ours == torchs


def test_build_without_openmp_runs_each_entry_point_on_one_thread(tmp_path):
    """A compiler without OpenMP still gives working par_* entry points (one thread each) and says so, and the
    ops then split the work over Python threads."""
    import ctypes
    import os
    import shutil

    from nnlab.utils import ckernel

    out = tmp_path / "kernels.so"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    ckernel._compile(cc, ckernel.FLAGS, _native._SOURCE, out)
    lib = ctypes.CDLL(str(out))
    flag = ctypes.c_int64(1)
    lib.nnlab_openmp(ctypes.byref(flag))
    assert flag.value == 0
    x = torch.randn(2, 3, 8, 8)
    y = torch.empty(2, 3, 4, 4)
    idx = torch.empty(2, 3, 4, 4, dtype=torch.uint8)
    fwd = lib.par_maxpool_fwd_f32
    fwd.argtypes = _native._SIGNATURES["par_maxpool_fwd_f32"]
    # planar: C=1, rows=0; the work items are the 2·3·4 output rows, asked for on "2 threads"
    fwd(x.data_ptr(), y.data_ptr(), idx.data_ptr(), 8, 8, 1, 0, 2, 2, 4, 4, 24, 2)
    assert torch.equal(y, F.max_pool2d(x, 2))
    # the rows-split batch norm, a team with barriers under OpenMP, is one thread doing every pass without it
    xb, yb = torch.randn(37, 6), torch.empty(37, 6)
    mean, var, rstd = torch.empty(6), torch.empty(6), torch.empty(6)
    team = lib.bn_rows_fwd_team_f32
    team.argtypes = _native._SIGNATURES["bn_rows_fwd_team_f32"]
    ptrs = [t.data_ptr() for t in (xb, yb)] + [None, None] + [t.data_ptr() for t in (mean, var, rstd)] + [None, None]
    team(*ptrs, 0.1, 1e-5, 1, 37, 6, 2)
    torch.testing.assert_close(yb, F.batch_norm(xb, None, None, training=True))
