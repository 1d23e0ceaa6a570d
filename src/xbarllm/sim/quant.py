"""Symmetric integer quantisation: per-row (activations) and per-column (weights) scales."""

from __future__ import annotations

import torch


def quantize(x: torch.Tensor, bits: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer-valued x/scale in ±(2^(bits-1)-1), with one scale per slice along `dim` (max-abs)."""
    top = 2 ** (bits - 1) - 1
    scale = x.abs().amax(dim=dim, keepdim=True).clamp(min=1e-12) / top
    return (x / scale).round().clamp(-top, top), scale
