"""Balanced base-(2^(S+1)-1) digits of integer activations, vectorised (paper §5.2, Fig. 7)."""

from __future__ import annotations

import numpy as np
import torch

from xbarllm.mapping.encoding import base


def n_digits(s: int, max_abs: int) -> int:
    """Fewest balanced digits whose range ±(B^n - 1)/2 covers |x| <= max_abs."""
    b, n = base(s), 1
    while (b**n - 1) // 2 < max_abs:
        n += 1
    return n


def encode(x: torch.Tensor, s: int, digits: int) -> torch.Tensor:
    """Digits of integer-valued `x`, least significant first: shape (digits, *x.shape), values in ±(2^S - 1).

    The base B is odd, so rest / B is never halfway between integers and d = rest - B·round(rest / B) is
    the balanced remainder; float64 keeps it exact.
    """
    b = base(s)
    rest = x.to(torch.float64)
    out = torch.empty((digits, *x.shape), dtype=torch.float64)
    for p in range(digits):
        q = torch.round(rest / b)
        torch.sub(rest, q, alpha=b, out=out[p])
        rest = q
    if bool((rest != 0).any()):
        raise ValueError(f"{digits} base-{b} digits cannot hold values up to {int(x.abs().max())}")
    return out.to(x.dtype if x.is_floating_point() else torch.float32)


def decode(digits: torch.Tensor, s: int) -> torch.Tensor:
    """Inverse of `encode`: Σ_p d_p · B^p, as int64."""
    b = base(s)
    weights = torch.tensor([b**p for p in range(digits.shape[0])], dtype=torch.int64)
    return torch.tensordot(weights, digits.to(torch.int64), dims=1)


def cell_energy(s: int) -> np.ndarray:
    """Σ χ_r² over the conducting resistors for each digit magnitude |d| = 0 … 2^S - 1 (float32 table).

    Resistors hold 1, 2, 4, …, 2^(S-1); |d| = Σ b_j 2^j switches on resistor j for each set bit, so the
    sum is Σ b_j 4^j. Per-resistor noise adds variance in proportion to it.
    """
    return np.array([sum(4**j for j in range(s) if v >> j & 1) for v in range(2**s)], dtype=np.float32)
