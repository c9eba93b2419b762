"""Pooling variants (course §3, docs/derivations.md §3): gradients, equality with torch where torch has
the op, each variant's defining behaviour, errors and the layers/registry entries."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _ops_helpers import _one_thread, channels_last, compare_with_torch  # noqa: F401 (autouse fixture)
from torch.autograd import gradcheck

from nnlab import ops
from nnlab.nn import pooling as layers
from nnlab.nn.registry import make_pool
from nnlab.ops import OpInputError

D = torch.float64

# (shape, kernel, stride, padding, dilation, ceil_mode): batch 1, odd sizes, overlap, rectangular
# windows, padding, dilation, ceil mode and the copy-free tiled case (stride = kernel).
WINDOWS = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),
    ((1, 2, 7, 9), 3, 2, 1, 1, True),
    ((2, 2, 9, 7), (3, 2), (2, 1), (1, 0), (2, 1), False),
    ((2, 2, 7, 7), 2, 2, 0, 1, True),
    ((2, 3, 5, 5), 3, 1, 1, 1, False),
    ((1, 1, 5, 6), 2, None, 0, 1, False),
]


def _x(shape, seed=0, positive=False, dtype=D):
    g = torch.Generator().manual_seed(seed)
    x = (
        torch.rand(*shape, generator=g, dtype=dtype) + 0.1
        if positive
        else torch.randn(*shape, generator=g, dtype=dtype)
    )
    return x.requires_grad_()


def _variants(x):
    return [x, channels_last(x)]


# ------------------------------------------------------------------------------------------- max/avg


@pytest.mark.parametrize("shape, k, s, p, d, ceil", WINDOWS)
def test_max_pool_gradcheck_and_equals_torch(shape, k, s, p, d, ceil):
    for x in _variants(_x(shape)):
        assert gradcheck(lambda x: ops.max_pool2d(x, k, s, p, d, ceil), (x,))
        for dtype in (D, torch.float32):
            xd = x.detach().to(dtype).requires_grad_()
            compare_with_torch(
                lambda x: ops.max_pool2d(x, k, s, p, d, ceil), lambda x: F.max_pool2d(x, k, s, p, d, ceil), [xd]
            )
        ours = ops.max_pool2d(x, k, s, p, d, ceil, return_indices=True)[1]
        assert torch.equal(ours, F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)[1])


@pytest.mark.parametrize("shape, k, s, p, d, ceil", [w for w in WINDOWS if w[4] == 1])
@pytest.mark.parametrize("count_include_pad", [True, False])
def test_avg_pool_gradcheck_and_equals_torch(shape, k, s, p, d, ceil, count_include_pad):
    for x in _variants(_x(shape, seed=1)):
        assert gradcheck(lambda x: ops.avg_pool2d(x, k, s, p, ceil, count_include_pad), (x,))
        for dtype in (D, torch.float32):
            xd = x.detach().to(dtype).requires_grad_()
            compare_with_torch(
                lambda x: ops.avg_pool2d(x, k, s, p, ceil, count_include_pad),
                lambda x: F.avg_pool2d(x, k, s, p, ceil, count_include_pad),
                [xd],
            )


def test_avg_pool_divisor_override():
    x = _x((2, 2, 6, 6))
    compare_with_torch(
        lambda x: ops.avg_pool2d(x, 3, 2, 1, divisor_override=5),
        lambda x: F.avg_pool2d(x, 3, 2, 1, divisor_override=5),
        [x],
    )


def test_max_pool_ties_go_to_first_maximum_like_torch():
    # Integer values in {0, 1, 2}: most windows have ties; also exact-zero windows (as after ReLU).
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 3, (2, 3, 7, 8), generator=g).to(D).requires_grad_()
    for args in [(2, None, 0), (3, 2, 1), (3, 1, 0)]:
        compare_with_torch(lambda x, a=args: ops.max_pool2d(x, *a), lambda x, a=args: F.max_pool2d(x, *a), [x])
    # And by the definition: in every 2x2 tile the gradient lands on the first maximum (row-major).
    x = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]]], requires_grad=True)
    ops.max_pool2d(x, 2).sum().backward()
    assert x.grad.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


def test_unbatched_input():
    x = torch.randn(3, 6, 5, dtype=D)
    torch.testing.assert_close(ops.max_pool2d(x, 2), F.max_pool2d(x, 2), rtol=0, atol=0)
    torch.testing.assert_close(ops.avg_pool2d(x, 2), F.avg_pool2d(x, 2), rtol=0, atol=1e-15)


# ------------------------------------------------------------------------------------------------ Lp


@pytest.mark.parametrize("shape, k, s, p, d, ceil", [w for w in WINDOWS if w[3] == 0 and w[4] == 1])
@pytest.mark.parametrize("norm_type", [1.0, 2.0, 3.0, 1.5])
def test_lp_pool_gradcheck_and_equals_torch(shape, k, s, p, d, ceil, norm_type):
    x = _x(shape, seed=2, positive=True)  # where torch's Σxᵖ is the p-norm
    pt = torch.tensor(norm_type, dtype=D, requires_grad=True)
    assert gradcheck(lambda x, pt: ops.lp_pool2d(x, pt, k, s, ceil), (x, pt))  # learnable p too
    signed = _x(shape, seed=3)
    assert gradcheck(lambda x: ops.lp_pool2d(x, norm_type, k, s, ceil), (channels_last(signed),))
    if not ceil:  # torch's ceil mode rescales partial windows by kh·kw/count (not a p-norm); ours sums
        for dtype in (D, torch.float32):
            xd = x.detach().to(dtype).requires_grad_()
            compare_with_torch(
                lambda x: ops.lp_pool2d(x, norm_type, k, s), lambda x: F.lp_pool2d(x, norm_type, k, s), [xd]
            )


def test_lp_pool_is_the_p_norm_of_each_window():
    x = torch.randn(2, 3, 6, 6, dtype=D)
    for p in (1.0, 2.0, 3.0, 0.5, 7.0):
        windows = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(2, 3, 3, 3, 4)
        expected = windows.abs().pow(p).sum(-1).pow(1 / p)
        torch.testing.assert_close(ops.lp_pool2d(x, p, 2), expected, rtol=1e-12, atol=1e-12)
    # Large p tends to max |x| without overflow (the sum of |x|^200 overflows float32 directly).
    x32 = torch.rand(2, 3, 6, 6) * 50
    torch.testing.assert_close(ops.lp_pool2d(x32, 200.0, 2), F.max_pool2d(x32, 2), rtol=0.01, atol=0)


def test_lp_pool_zero_windows_have_zero_gradient_not_nan():
    x = torch.zeros(1, 1, 4, 4, dtype=D, requires_grad=True)
    p = torch.tensor(2.0, dtype=D, requires_grad=True)
    ops.lp_pool2d(x, p, 2).sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x)) and p.grad.item() == 0.0


def test_learnable_p_moves_under_training():
    layer = layers.LPPool2d(2.0, 2, learnable=True)
    x = torch.rand(4, 2, 6, 6)
    opt = torch.optim.SGD(layer.parameters(), lr=0.5)
    p0 = float(layer.p.detach())
    for _ in range(5):  # push outputs towards the max: p must grow
        loss = (layer(x) - F.max_pool2d(x, 2)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(layer.p.detach()) > p0 + 0.1


# ----------------------------------------------------------------------------------------- stochastic


def test_stochastic_pool_samples_with_probability_proportional_to_activation():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 5.0, 0.0]).view(1, 2, 2, 2)
    x = x.expand(20000, 2, 2, 2).contiguous()
    y = ops.stochastic_pool2d(x, 2, training=True, generator=torch.Generator().manual_seed(0))
    freq = torch.stack([(y[:, 0] == v).double().mean() for v in (1.0, 2.0, 3.0, 4.0)]).flatten()
    expected = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=D)
    sigma = (expected * (1 - expected) / 20000).sqrt()
    assert ((freq - expected).abs() < 5 * sigma).all(), freq
    assert (y[:, 1] == 5.0).all(), "zero-probability elements are never drawn"


def test_stochastic_pool_eval_is_expectation_of_training():
    x = _x((1, 2, 4, 4), seed=4, positive=True).detach()
    samples = ops.stochastic_pool2d(
        x.expand(40000, 2, 4, 4), 2, training=True, generator=torch.Generator().manual_seed(1)
    )
    expected = ops.stochastic_pool2d(x, 2, training=False)
    torch.testing.assert_close(samples.mean(0, keepdim=True), expected, rtol=0.02, atol=0)
    w = x.unfold(2, 2, 2).unfold(3, 2, 2).reshape(1, 2, 2, 2, 4)
    torch.testing.assert_close(expected, (w * w).sum(-1) / w.sum(-1), rtol=1e-12, atol=0)


def test_stochastic_pool_training_gradient_goes_to_sampled_element():
    x = _x((3, 2, 6, 6), seed=6, positive=True)
    y = ops.stochastic_pool2d(x, 2, training=True, generator=torch.Generator().manual_seed(2))
    g = torch.randn_like(y)
    y.backward(g)
    # Each window's gradient is g at exactly the element whose value was output.
    xw = x.detach().unfold(2, 2, 2).unfold(3, 2, 2).reshape(3, 2, 3, 3, 4)
    gw = x.grad.unfold(2, 2, 2).unfold(3, 2, 2).reshape(3, 2, 3, 3, 4)
    chosen = xw == y.detach().unsqueeze(-1)
    assert torch.equal(gw.sum(-1), g) and torch.equal(gw != 0, chosen)


@pytest.mark.parametrize("training", [False, True])
def test_stochastic_pool_gradcheck(training):
    x = _x((2, 2, 5, 6), seed=7, positive=True)
    assert gradcheck(lambda x: ops.stochastic_pool2d(x, 2, None, training, torch.Generator().manual_seed(3)), (x,))


def test_stochastic_pool_zero_windows():
    x = torch.zeros(2, 1, 4, 4, dtype=D, requires_grad=True)
    for training in (True, False):
        y = ops.stochastic_pool2d(x, 2, training=training)
        assert torch.equal(y, torch.zeros_like(y))
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(g).all()


# -------------------------------------------------------------------------------------- mixed / gated


@pytest.mark.parametrize("shape, k, s", [((2, 3, 6, 6), 2, None), ((1, 2, 7, 5), 3, 2), ((2, 2, 5, 5), 2, 1)])
def test_mixed_and_gated_gradcheck(shape, k, s):
    x = _x(shape, seed=8)
    kk = k * k
    alphas = (torch.tensor(0.3, dtype=D), torch.rand(shape[1], dtype=D))  # per layer, per channel
    for alpha in alphas:
        assert gradcheck(lambda x, a: ops.mixed_pool2d(x, a, k, s), (x, alpha.requires_grad_()))
    for omega in (torch.randn(kk, dtype=D), torch.randn(shape[1], kk, dtype=D)):
        omega.requires_grad_()
        assert gradcheck(lambda x, w: ops.gated_pool2d(x, w, k, s), (channels_last(x), omega))


def test_mixed_pool_interpolates_max_and_avg():
    x = _x((2, 3, 6, 6), seed=9)
    compare_with_torch(lambda x: ops.mixed_pool2d(x, 1.0, 2), lambda x: F.max_pool2d(x, 2), [x])
    compare_with_torch(lambda x: ops.mixed_pool2d(x, 0.0, 2), lambda x: F.avg_pool2d(x, 2), [x])
    alpha = torch.tensor([0.0, 0.5, 1.0], dtype=D)
    y = ops.mixed_pool2d(x, alpha, 2)
    torch.testing.assert_close(y[:, 1], 0.5 * (F.max_pool2d(x, 2) + F.avg_pool2d(x, 2))[:, 1])
    # Gated with ω = 0: α = σ(0) = 1/2 everywhere.
    gated = ops.gated_pool2d(x, torch.zeros(4, dtype=D), 2)
    torch.testing.assert_close(gated, 0.5 * (F.max_pool2d(x, 2) + F.avg_pool2d(x, 2)))


def test_gated_alpha_is_sigmoid_of_window_projection():
    x = torch.tensor([[[[1.0, -2.0], [3.0, 0.5]]]], dtype=D)
    w = torch.tensor([0.2, -0.1, 0.3, 0.4], dtype=D)
    a = torch.sigmoid((x.flatten() * w).sum())
    expected = a * 3.0 + (1 - a) * x.mean()
    torch.testing.assert_close(ops.gated_pool2d(x, w, 2).flatten()[0], expected)


# ---------------------------------------------------------------------------------------------- k-max


def test_kmax_keeps_k_largest_in_original_order():
    x = torch.tensor([[[3.0, 9.0, 1.0, 7.0, 9.0, 2.0, 8.0]]])
    assert ops.kmax_pool1d(x, 3).flatten().tolist() == [9.0, 9.0, 8.0]
    assert ops.kmax_pool1d(x, 4).flatten().tolist() == [9.0, 7.0, 9.0, 8.0]
    # Ties beyond k: the earlier positions win.
    assert ops.kmax_pool1d(torch.tensor([[[1.0, 5.0, 5.0, 5.0]]]), 2).flatten().tolist() == [5.0, 5.0]
    x = torch.tensor([[[5.0, 1.0, 5.0, 5.0]]], requires_grad=True)
    ops.kmax_pool1d(x, 2).sum().backward()
    assert x.grad.flatten().tolist() == [1.0, 0.0, 1.0, 0.0]


def test_kmax_against_brute_force_and_gradcheck():
    x = _x((3, 4, 11), seed=10)
    y = ops.kmax_pool1d(x, 5)
    for n in range(3):
        for c in range(4):
            row = x[n, c].tolist()
            keep = sorted(sorted(range(11), key=lambda i: (-row[i], i))[:5])
            assert y[n, c].tolist() == [row[i] for i in keep]
    assert gradcheck(lambda x: ops.kmax_pool1d(x, 5), (x,))
    assert gradcheck(lambda x: ops.kmax_pool1d(x, 2, dim=1), (x,))
    assert ops.kmax_pool1d(x, 11).tolist() == x.tolist()


# --------------------------------------------------------------------------------------------- global


def test_global_pools():
    x = _x((2, 3, 5, 4), seed=11)
    compare_with_torch(ops.global_avg_pool2d, lambda x: x.mean((2, 3)), [x])
    compare_with_torch(ops.global_max_pool2d, lambda x: F.adaptive_max_pool2d(x, 1)[..., 0, 0], [x])
    assert ops.global_avg_pool2d(x, keepdim=True).shape == (2, 3, 1, 1)
    assert gradcheck(ops.global_avg_pool2d, (channels_last(x),))
    assert gradcheck(ops.global_max_pool2d, (channels_last(x),))
    t = torch.ones(1, 1, 2, 2, requires_grad=True)
    ops.global_max_pool2d(t).sum().backward()
    assert t.grad.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ops.max_pool2d(torch.randn(4, 4), 2), "expected a 3-D or 4-D input"),
        (lambda: ops.avg_pool2d(torch.randn(1, 1, 1, 4, 4), 2), "expected a 3-D or 4-D input"),
        (lambda: ops.max_pool2d(torch.randn(1, 1, 4, 4), 2, padding=2), "at most half"),
        (lambda: ops.max_pool2d(torch.randn(1, 1, 4, 4), 0), "positive"),
        (lambda: ops.max_pool2d(torch.randn(1, 1, 2, 2), 3), "too small"),
        (lambda: ops.lp_pool2d(torch.randn(1, 1, 4, 4), 0.0, 2), "p must be a finite number > 0"),
        (lambda: ops.lp_pool2d(torch.randn(1, 1, 4, 4), -1.0, 2), "> 0"),
        (lambda: ops.lp_pool2d(torch.randn(1, 1, 4, 4), torch.tensor(-2.0), 2), "> 0"),
        (lambda: ops.stochastic_pool2d(-torch.rand(1, 1, 4, 4), 2), "non-negative"),
        (lambda: ops.mixed_pool2d(torch.randn(1, 3, 4, 4), torch.rand(2), 2), "one per channel"),
        (lambda: ops.gated_pool2d(torch.randn(1, 3, 4, 4), torch.rand(9), 2), "gate_weight"),
        (lambda: ops.kmax_pool1d(torch.randn(2, 3, 5), 6), r"k must be an int in \[1, 5\]"),
        (lambda: ops.kmax_pool1d(torch.randn(2, 3, 5), 0), "k must be"),
        (lambda: ops.global_avg_pool2d(torch.randn(3, 4, 4)), "4-D"),
    ],
)
def test_bad_input_one_line_error(call, match):
    with pytest.raises(OpInputError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------ layers/registry


def test_layers_equal_torch_layers():
    x = _x((2, 3, 9, 8), seed=12, positive=True)
    pairs = [
        (layers.MaxPool2d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
        (layers.AvgPool2d(3, 2, 1, False, False), torch.nn.AvgPool2d(3, 2, 1, False, False)),
        (layers.LPPool2d(2.0, 2), torch.nn.LPPool2d(2.0, 2)),
    ]
    for ours, theirs in pairs:
        compare_with_torch(ours, theirs, [x])


@pytest.mark.parametrize(
    "name, cls",
    [
        ("max", layers.MaxPool2d),
        ("avg", layers.AvgPool2d),
        ("lp", layers.LPPool2d),
        ("lp_learned", layers.LPPool2d),
        ("stochastic", layers.StochasticPool2d),
        ("mixed", layers.MixedPool2d),
        ("gated", layers.GatedPool2d),
    ],
)
def test_registry_builds_ours_and_trains(name, cls):
    pool = make_pool(name, 2)
    assert type(pool) is cls
    x = torch.rand(4, 3, 8, 8, requires_grad=True)
    for train in (True, False):
        pool.train(train)
        y = pool(x)
        assert y.shape == (4, 3, 4, 4) and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(x.grad).all()
    params = list(pool.parameters())
    if name in ("lp_learned", "mixed", "gated"):
        assert params and all(p.grad is not None for p in params)


def test_registry_keeps_torch_pools():
    assert type(make_pool("torch_max", 2)) is torch.nn.MaxPool2d
    assert type(make_pool("torch_avg", 2)) is torch.nn.AvgPool2d
    assert type(make_pool("torch_lp", 2)) is torch.nn.LPPool2d
