"""conv2d (course §2, docs/derivations.md §2): gradients, equality with torch, errors, the Conv2d layer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _ops_helpers import _one_thread, channels_last, compare_with_torch  # noqa: F401 (autouse fixture)
from torch.autograd import gradcheck

from nnlab.nn.conv import Conv2d
from nnlab.ops import OpInputError, conv2d

# (N, Cin, H, W, Cout, kernel, stride, padding, dilation, groups): batch 1, odd sizes, 1x1, rectangular
# kernels, every stride/padding/dilation/groups combination that occurs in practice. Cases with stride 1
# along H and one group take the row-shift path, the others full im2col (derivations §2.3).
CASES = [
    (1, 3, 5, 6, 4, 3, 1, 1, 1, 1),
    (2, 4, 7, 5, 6, 3, 2, 1, 1, 2),
    (3, 4, 9, 8, 4, (3, 2), (2, 1), (1, 0), (2, 1), 4),
    (2, 2, 5, 5, 3, 1, 1, 0, 1, 1),
    (2, 2, 8, 7, 2, 3, 3, 2, 2, 1),
    (1, 6, 6, 6, 3, 2, 2, 0, 1, 3),
    (2, 3, 4, 4, 5, 4, 1, 2, 1, 1),
    (2, 3, 7, 9, 4, 3, (1, 2), 1, (2, 1), 1),
]


def _make(case, dtype, seed=0):
    N, C, H, W, O, k, s, p, d, g = case
    gen = torch.Generator().manual_seed(seed)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(N, C, H, W, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(O, C // g, kh, kw, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(O, generator=gen, dtype=dtype, requires_grad=True)
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_gradcheck(case, layout):
    x, w, b, kw = _make(case, torch.float64)
    if layout == "channels_last":
        x = channels_last(x)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, **kw), (x, w, b))


def test_gradcheck_without_bias():
    x, w, _, kw = _make(CASES[1], torch.float64)
    assert gradcheck(lambda x, w: conv2d(x, w, None, **kw), (x, w))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_equals_torch(case, dtype):
    x, w, b, kw = _make(case, dtype, seed=3)
    compare_with_torch(lambda x, w, b: conv2d(x, w, b, **kw), lambda x, w, b: F.conv2d(x, w, b, **kw), [x, w, b])


def test_equals_torch_realistic_float32_channels_last():
    x, w, b, kw = _make((8, 16, 14, 14, 32, 3, 1, 1, 1, 1), torch.float32, seed=4)
    compare_with_torch(
        lambda x, w, b: conv2d(x, w, b, **kw), lambda x, w, b: F.conv2d(x, w, b, **kw), [channels_last(x), w, b]
    )


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("k, d", [(3, 1), (2, 1), (4, 2), ((2, 3), (1, 2))])
def test_string_padding_equals_torch(padding, k, d):
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 3, kh, kw, dtype=torch.float64, requires_grad=True)
    compare_with_torch(
        lambda x, w: conv2d(x, w, None, 1, padding, d), lambda x, w: F.conv2d(x, w, None, 1, padding, d), [x, w]
    )


def test_unbatched_input():
    x, w = torch.randn(3, 6, 6, dtype=torch.float64), torch.randn(2, 3, 3, 3, dtype=torch.float64)
    torch.testing.assert_close(conv2d(x, w, padding=1), F.conv2d(x, w, padding=1), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: conv2d(torch.randn(3, 4), torch.randn(2, 3, 1, 1)), "expected .N, C, H, W."),
        (lambda: conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3)), "weight"),
        (lambda: conv2d(torch.randn(1, 4, 5, 5), torch.randn(2, 3, 3, 3)), "4 channels"),
        (lambda: conv2d(torch.randn(1, 4, 5, 5), torch.randn(3, 2, 3, 3), groups=2), "divisible"),
        (lambda: conv2d(torch.randn(1, 3, 2, 2), torch.randn(2, 3, 3, 3)), "smaller than the dilated kernel"),
        (lambda: conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), stride=0), "positive"),
        (lambda: conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), None, 2, "same"), "stride 1"),
        (lambda: conv2d(torch.randn(1, 3, 5, 5), torch.randn(2, 3, 3, 3), torch.randn(3)), "bias"),
    ],
)
def test_bad_input_one_line_error(call, match):
    with pytest.raises(OpInputError, match=match) as e:
        call()
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "circular"])
def test_layer_equals_torch_layer(padding_mode):
    torch.manual_seed(0)
    ours = Conv2d(4, 6, 3, stride=2, padding=1, dilation=1, groups=2, padding_mode=padding_mode).double()
    theirs = torch.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, padding_mode=padding_mode).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 4, 9, 8, dtype=torch.float64, requires_grad=True)
    compare_with_torch(ours, theirs, [x])
    y = ours(x)
    y.sum().backward()
    y2 = theirs(x.detach())
    y2.sum().backward()
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, rtol=0, atol=1e-10)
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, rtol=0, atol=1e-10)


def test_backward_never_calls_torch_convolution(monkeypatch):
    """The op is im2col + matmul: torch's convolution (forward or its autograd) must not be reached."""

    def boom(*a, **k):
        raise AssertionError("torch convolution called")

    for name in ("conv2d", "convolution", "conv_transpose2d"):
        monkeypatch.setattr(torch, name, boom, raising=False)
        monkeypatch.setattr(F, name, boom, raising=False)
    x, w, b, kw = _make(CASES[2], torch.float64)
    conv2d(x, w, b, **kw).sum().backward()
    assert x.grad is not None and w.grad is not None and b.grad is not None


def _nhwc_view(shape):
    """(N, C, H, W) as a view of (N, H, W, C) memory: for C = 1 both contiguous and channels-last."""
    N, C, H, W = shape
    return torch.randn(N, H, W, C).permute(0, 3, 1, 2)


# (x, weight) strides torch reads either way: one-channel images viewed from (N, H, W, 1) memory (how the image
# DataModules build their batches), N x C x 1 x 1 maps, plain NCHW and channels-last, a channels-last weight.
FORMAT_CASES = {
    "one-channel NHWC view": (lambda: _nhwc_view((4, 1, 8, 8)), lambda: torch.randn(6, 1, 3, 3)),
    "one-channel NCHW": (lambda: torch.randn(4, 1, 8, 8), lambda: torch.randn(6, 1, 3, 3)),
    "NCHW": (lambda: torch.randn(4, 3, 8, 8), lambda: torch.randn(6, 3, 3, 3)),
    "channels-last": (lambda: _nhwc_view((4, 3, 8, 8)), lambda: torch.randn(6, 3, 3, 3)),
    "1x1 maps": (lambda: torch.randn(4, 3, 1, 1), lambda: torch.randn(6, 3, 1, 1)),
    "channels-last weight": (
        lambda: torch.randn(4, 3, 8, 8),
        lambda: torch.randn(6, 3, 3, 3).contiguous(memory_format=torch.channels_last),
    ),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", list(FORMAT_CASES))
def test_output_memory_format_is_torchs(case, dtype):
    """y comes out in the memory format F.conv2d picks (its strides): a conv that turned torch's channels-last
    choice into NCHW made every later layer of a one-channel image net run its slower NCHW kernels."""
    make_x, make_w = FORMAT_CASES[case]
    torch.manual_seed(0)
    x, w = make_x().to(dtype).requires_grad_(), make_w().to(dtype)
    pad = w.shape[-1] // 2
    y, ref = conv2d(x, w, padding=pad), F.conv2d(x.detach(), w, padding=pad)
    assert y.stride() == ref.stride(), f"{case}: ours {y.stride()}, torch {ref.stride()}"
    torch.testing.assert_close(y, ref)
    g = torch.randn_like(ref)
    (dx,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(dx, torch.nn.grad.conv2d_input(x.shape, w, g, padding=pad))
