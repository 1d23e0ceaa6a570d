"""Symmetric integer quantisation: per-row (activations) and per-column (weights) scales."""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from xbarllm.sim.rng import _from_bits


@njit(parallel=True, cache=True)
def _quantize_rows(x, top, q, scale):
    """`quantize` along the last axis of x (R, K) float32 into q (R, K) and scale (R,), in two passes per row. The
    peak is the largest bit pattern of |x| (an integer maximum vectorises where a float one does not); patterns
    from inf's up are inf and NaN."""
    bits = x.view(np.int32)
    for r in prange(x.shape[0]):
        high = np.int32(0)
        for k in range(x.shape[1]):
            high = max(high, bits[r, k] & 0x7FFFFFFF)
        if high >= 0x7F800000:
            q[r] = 0
            scale[r] = np.nan
            continue
        s = _from_bits(high) / top
        s = s if s > 0 else np.float32(1)
        for k in range(x.shape[1]):
            q[r, k] = min(max(np.rint(x[r, k] / s), -top), top)
        scale[r] = s


def quantize(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-valued x/scale in ±(2^(bits-1)-1), with one scale per slice along `dim` (max-abs).

    Any non-zero peak sets its slice's scale, however small: a softmax row of EXP values near 1e-16 keeps its
    127 (a floor on the scale would zero it, and the softmax would divide 0 by 0). An all-zero slice gets scale 1.
    A slice holding inf or NaN (an overflowed EXP, say) quantises to zeros with a NaN scale, so the products it
    enters come out NaN instead of stopping the run. float32 without autograd runs in one numba kernel (a slice
    along `dim` that is not contiguous is copied first), bit for bit as the torch operations that other dtypes and
    inputs that require grad (scale stays differentiable) take."""
    top = 2 ** (bits - 1) - 1
    if x.dtype == torch.float32 and x.numel() and not x.requires_grad:
        rows = x.transpose(dim, -1)
        flat = rows.reshape(-1, rows.shape[-1]).contiguous()  # a view if the slices are contiguous, else a copy
        q, scale = torch.empty(flat.shape), torch.empty(flat.shape[0])
        _quantize_rows(flat.numpy(), np.float32(top), q.numpy(), scale.numpy())
        q, scale = q.view(rows.shape).transpose(dim, -1), scale.view(*rows.shape[:-1], 1).transpose(dim, -1)
        # contiguous x gives contiguous q, as torch's operations do (a bfloat16 GEMM rounds by its operands' layout)
        return (q.contiguous(), scale.contiguous()) if x.is_contiguous() else (q, scale)
    return _quantize_torch(x, bits, dim)


def _quantize_torch(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`quantize` in torch operations, for any float dtype."""
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


def largest_magnitude(x: torch.Tensor) -> float:
    """max |x| over all elements (0.0 if there are none), from one pass (`aminmax`: half the time of abs, max)."""
    if not x.numel():
        return 0.0
    lo, hi = torch.aminmax(x)
    return max(-float(lo), float(hi))
