"""Balanced base-(2^(S+1)-1) digits of integer activations, vectorised (paper §5.2, Fig. 7)."""

from __future__ import annotations

import torch

from xbarllm.mapping.encoding import base


def n_digits(s: int, max_abs: int) -> int:
    """Fewest balanced digits whose range ±(B^n - 1)/2 covers |x| <= max_abs."""
    b, n = base(s), 1
    while (b**n - 1) // 2 < max_abs:
        n += 1
    return n


def encode(x: torch.Tensor, s: int, digits: int) -> torch.Tensor:
    """Digits of integer-valued `x`, least significant first: shape (digits, *x.shape), values in ±(2^S - 1)."""
    b, h = base(s), 2**s - 1
    rest = x.to(torch.int64)
    out = []
    for _ in range(digits):
        d = torch.remainder(rest + h, b) - h  # balanced remainder in [-h, h]
        out.append(d)
        rest = torch.div(rest - d, b, rounding_mode="floor")
    if bool((rest != 0).any()):
        raise ValueError(f"{digits} base-{b} digits cannot hold values up to {int(x.abs().max())}")
    return torch.stack(out).to(x.dtype if x.is_floating_point() else torch.float32)


def decode(digits: torch.Tensor, s: int) -> torch.Tensor:
    """Inverse of `encode`: Σ_p d_p · B^p, as int64."""
    b = base(s)
    weights = torch.tensor([b**p for p in range(digits.shape[0])], dtype=torch.int64)
    return torch.tensordot(weights, digits.to(torch.int64), dims=1)


def cell_energy(digit_abs: torch.Tensor, s: int) -> torch.Tensor:
    """Σ χ_r² over the conducting resistors of a digit magnitude: resistors hold 1, 2, 4, …, 2^(S-1).

    |d| = Σ b_j 2^j switches on resistor j for each set bit, so the sum is Σ b_j 4^j; per-resistor
    noise adds variance in proportion to it.
    """
    d = digit_abs.to(torch.int64)
    out = torch.zeros_like(d)
    for j in range(s):
        out += ((d >> j) & 1) * 4**j
    return out.to(digit_abs.dtype)
