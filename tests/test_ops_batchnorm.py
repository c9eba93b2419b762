"""Batch norm (course §1, docs/derivations.md §1): gradients, equality with torch, running statistics,
the mean-0/variance-1 property and the one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _ops_helpers import _one_thread, channels_last, compare_with_torch  # noqa: F401 (autouse fixture)
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from torch.autograd import gradcheck

from nnlab.nn.batchnorm import BatchNorm1d, BatchNorm2d
from nnlab.ops import OpInputError, batch_norm

SHAPES = [(5, 3), (1, 3, 4), (4, 3, 5, 7), (2, 3, 3, 1, 2), (7, 1)]


def _params(C, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = (torch.rand(C, generator=g, dtype=dtype) + 0.5).requires_grad_()
    b = torch.randn(C, generator=g, dtype=dtype).requires_grad_()
    rm = torch.randn(C, generator=g, dtype=dtype)
    rv = torch.rand(C, generator=g, dtype=dtype) + 0.5
    return w, b, rm, rv


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("training", [True, False])
def test_gradcheck(shape, training):
    x = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    w, b, rm, rv = _params(shape[1], torch.float64)
    assert gradcheck(lambda x, w, b: batch_norm(x, rm.clone(), rv.clone(), w, b, training), (x, w, b))


def test_gradcheck_channels_last_and_no_affine():
    x = channels_last(torch.randn(3, 4, 5, 3, dtype=torch.float64, requires_grad=True))
    assert gradcheck(lambda x: batch_norm(x, None, None, training=True), (x,))
    _, _, rm, rv = _params(4, torch.float64)
    assert gradcheck(lambda x: batch_norm(x, rm, rv, training=False), (x,))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", SHAPES + [(16, 8, 6, 6)])
@pytest.mark.parametrize("training", [True, False])
def test_equals_torch(dtype, shape, training):
    g = torch.Generator().manual_seed(1)
    # An offset and scale far from (0, 1) so that centring errors would show.
    x = (torch.randn(*shape, generator=g, dtype=dtype) * 3 + 5).requires_grad_()
    w, b, rm, rv = _params(shape[1], dtype)
    compare_with_torch(
        lambda x, w, b: batch_norm(x, rm.clone(), rv.clone(), w, b, training, 0.1, 1e-5),
        lambda x, w, b: F.batch_norm(x, rm.clone(), rv.clone(), w, b, training, 0.1, 1e-5),
        [x, w, b],
    )


def test_equals_torch_channels_last_float32():
    x = channels_last(torch.randn(8, 6, 5, 7, requires_grad=True))
    w, b, _, _ = _params(6, torch.float32)
    compare_with_torch(
        lambda x, w, b: batch_norm(x, None, None, w, b, True),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, True),
        [x, w, b],
    )


@pytest.mark.parametrize("momentum", [0.1, 0.5, 1.0])
def test_running_statistics_follow_torch(momentum):
    rm_o, rv_o = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    rm_t, rv_t = rm_o.clone(), rv_o.clone()
    g = torch.Generator().manual_seed(2)
    for step in range(5):
        x = torch.randn(6, 4, 3, 3, generator=g, dtype=torch.float64) * (step + 1) + step
        rv_prev = rv_o.clone()
        batch_norm(x, rm_o, rv_o, training=True, momentum=momentum)
        F.batch_norm(x, rm_t, rv_t, training=True, momentum=momentum)
        torch.testing.assert_close(rm_o, rm_t, rtol=0, atol=1e-12)
        torch.testing.assert_close(rv_o, rv_t, rtol=0, atol=1e-12)
        # By hand: the unbiased variance (m/(m−1)·biased) goes into the running variance.
        m = x.numel() // 4
        unbiased = x.var(dim=(0, 2, 3), correction=0) * m / (m - 1)
        torch.testing.assert_close(rv_o, (1 - momentum) * rv_prev + momentum * unbiased, rtol=0, atol=1e-12)


def test_eval_uses_running_statistics():
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    w, b, rm, rv = _params(3, torch.float64)
    y = batch_norm(x, rm, rv, w, b, training=False, eps=1e-5)
    shape = (1, 3, 1)
    expected = (x - rm.view(shape)) / torch.sqrt(rv.view(shape) + 1e-5) * w.view(shape) + b.view(shape)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-12)
    rm0, rv0 = rm.clone(), rv.clone()
    batch_norm(x, rm, rv, training=False)
    assert torch.equal(rm, rm0) and torch.equal(rv, rv0), "eval mode must not touch the running statistics"


# ---- §1.1: normalized features have mean 0 and variance σ²/(σ²+ε) -> 1


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    n=st.integers(2, 9),
    c=st.integers(1, 4),
    spatial=st.sampled_from([(), (3,), (2, 3)]),
)
def test_normalized_features_have_mean_zero_variance_one(data, n, c, spatial):
    shape = (n, c, *spatial)
    x = data.draw(arrays(np.float64, shape, elements=st.floats(-1e4, 1e4, allow_subnormal=False)))
    x = torch.from_numpy(x)
    eps = 1e-5
    y = batch_norm(x, None, None, training=True, eps=eps)
    assert torch.isfinite(y).all()
    dims = (0,) + tuple(range(2, x.dim()))
    var_x = x.var(dim=dims, correction=0)
    scale = x.abs().amax(dim=dims) + 1
    mean_y, var_y = y.mean(dim=dims), y.var(dim=dims, correction=0)
    # Mean 0 exactly up to rounding (relative to the input's magnitude over sqrt(var + eps)).
    assert (mean_y.abs() <= 1e-9 * scale / torch.sqrt(var_x + eps)).all()
    # Variance σ²/(σ² + ε): 1 up to the effect of ε, and exactly 0 for a constant channel.
    torch.testing.assert_close(var_y, var_x / (var_x + eps), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("value", [0.0, -3.5, 0.1, 1 / 3, 1e6])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(8, 3), (8, 3, 2, 2), (3, 3, 17, 13)])
def test_constant_input_gives_zeros_not_nan(value, dtype, shape):
    x = torch.full(shape, value, dtype=dtype, requires_grad=True)
    w, b, rm, rv = _params(3, dtype)
    y = batch_norm(x, rm, rv, w.detach(), torch.zeros(3, dtype=dtype), training=True)
    assert torch.equal(y, torch.zeros_like(y)), "x − μ is exactly 0 for a constant channel"
    y.backward(torch.randn_like(y))
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(rv).all()


# ---- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: batch_norm(torch.randn(5), None, None, training=True), "expected .N, C. or"),
        (lambda: batch_norm(torch.randn(1, 3), None, None, training=True), "more than 1 value per channel"),
        (lambda: batch_norm(torch.randn(1, 3, 1, 1), None, None, training=True), "more than 1 value"),
        (lambda: batch_norm(torch.randn(4, 3), None, None, training=False), "required when training=False"),
        (lambda: batch_norm(torch.randn(4, 3), torch.zeros(2), torch.ones(2), training=True), "shape .3,."),
    ],
)
def test_bad_input_one_line_error(call, match):
    with pytest.raises(OpInputError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


def test_single_value_per_channel_allowed_in_eval_like_torch():
    y = batch_norm(torch.randn(1, 3), torch.zeros(3), torch.ones(3), training=False)
    assert y.shape == (1, 3)


# ---- modules


@pytest.mark.parametrize(
    "cls, ref, shape",
    [
        (BatchNorm1d, torch.nn.BatchNorm1d, (6, 5)),
        (BatchNorm1d, torch.nn.BatchNorm1d, (6, 5, 4)),
        (BatchNorm2d, torch.nn.BatchNorm2d, (6, 5, 3, 3)),
    ],
)
@pytest.mark.parametrize("momentum", [0.1, None])
def test_module_matches_torch_over_training_and_eval(cls, ref, shape, momentum):
    torch.manual_seed(0)
    ours, theirs = cls(5, momentum=momentum).double(), ref(5, momentum=momentum).double()
    theirs.load_state_dict(ours.state_dict())
    for step in range(3):
        x = torch.randn(*shape, dtype=torch.float64) * 2 + step
        compare_with_torch(ours, theirs, [x.requires_grad_()])
        # compare_with_torch ran each module once on the same batch: statistics must agree.
        for k, v in theirs.state_dict().items():
            torch.testing.assert_close(ours.state_dict()[k], v, rtol=0, atol=1e-12, msg=k)
    ours.eval(), theirs.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-12)


def _with_stats(fn, rm, rv, training):
    return lambda x, w, b: fn(x, rm.clone(), rv.clone(), w, b, training)


@pytest.mark.slow
def test_fused_path_equals_torch():
    """The torch.compile'd math (set_fused) gives torch's values and gradients (compiles: ~20-60 s)."""
    from nnlab.ops import batchnorm

    batchnorm.set_fused(True)
    try:
        for shape in [(16, 8, 5, 5), (32, 6)]:
            x = (torch.randn(*shape) * 3 + 5).requires_grad_()
            w, b, rm, rv = _params(shape[1], torch.float32)
            for training in (True, False):
                compare_with_torch(
                    _with_stats(batch_norm, rm, rv, training), _with_stats(F.batch_norm, rm, rv, training), [x, w, b]
                )
        assert not batchnorm._FUSED["failed"], "torch.compile fell back to eager"
    finally:
        batchnorm.set_fused(False)


def test_module_without_running_stats_uses_batch_in_eval():
    m = BatchNorm2d(3, track_running_stats=False).double().eval()
    x = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    torch.testing.assert_close(m(x), F.batch_norm(x, None, None, m.weight, m.bias, True), rtol=0, atol=1e-12)
