"""Symmetric integer quantisation: per-row (activations) and per-column (weights) scales."""

from __future__ import annotations

import torch


def quantize(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-valued x/scale in ±(2^(bits-1)-1), with one scale per slice along `dim` (max-abs).

    Any non-zero peak sets its slice's scale, however small: a softmax row of EXP values near 1e-16 keeps its
    127 (a floor on the scale would zero it, and the softmax would divide 0 by 0). An all-zero slice gets scale 1.
    A slice holding inf or NaN (an overflowed EXP, say) quantises to zeros with a NaN scale, so the products it
    enters come out NaN instead of stopping the run."""
    top = 2 ** (bits - 1) - 1
    peak = x.abs().amax(dim=dim, keepdim=True)  # inf or NaN in a slice makes its peak inf or NaN
    scale = peak / top
    scale = torch.where(scale > 0, scale, torch.ones((), dtype=scale.dtype))  # zero (or underflowed) peaks
    q = torch.div(x, scale).round_().clamp_(-top, top)
    finite = torch.isfinite(peak)
    if not bool(finite.all()):
        q = torch.where(finite, q, torch.zeros((), dtype=q.dtype))
        scale = torch.where(finite, scale, torch.full((), float("nan"), dtype=scale.dtype))
    return q, scale
