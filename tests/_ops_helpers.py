"""Shared helpers for the ops tests: comparing ours to torch on values and on every gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

# The tolerances: float64 within 1e-10 (absolute), float32 within 1e-5 relative to the
# reference's scale (max-abs), since entries near zero make entry-wise relative error meaningless.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def assert_close_scaled(ours: torch.Tensor, ref: torch.Tensor, what: str = "") -> None:
    assert ours.shape == ref.shape, f"{what}: shape {tuple(ours.shape)} != {tuple(ref.shape)}"
    err = (ours.double() - ref.double()).abs().max().item() if ours.numel() else 0.0
    tol = TOL[ref.dtype]
    if ref.dtype == torch.float32:
        tol *= max(1.0, ref.abs().max().item())
    assert err <= tol, f"{what}: max abs error {err:.3g} > {tol:.3g}"


def compare_with_torch(
    ours: Callable[..., torch.Tensor],
    ref: Callable[..., torch.Tensor],
    inputs: Sequence[torch.Tensor],
    seed: int = 0,
) -> None:
    """Same output and the same gradient for every input that requires grad, under a random upstream grad."""
    a = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    b = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    ya, yb = ours(*a), ref(*b)
    assert_close_scaled(ya, yb, "forward")
    g = torch.randn(yb.shape, generator=torch.Generator().manual_seed(seed), dtype=yb.dtype)
    wrt_a = [t for t in a if t.requires_grad]
    wrt_b = [t for t in b if t.requires_grad]
    ga = torch.autograd.grad(ya, wrt_a, g)
    gb = torch.autograd.grad(yb, wrt_b, g)
    for i, (x, y) in enumerate(zip(ga, gb)):
        assert_close_scaled(x, y, f"grad of differentiable input #{i}")


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """A non-contiguous (channels-last) copy that still requires grad like ``x``."""
    y = x.detach().to(memory_format=torch.channels_last)
    assert not y.is_contiguous() or x.shape[1] == 1, "channels-last of a multi-channel map is non-contiguous"
    return y.requires_grad_(x.requires_grad)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: intra-op threads only add contention (gradcheck ran 20x slower with 2 busy cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
