"""Dense-crossbar storage of integer weights at b bits per cell: misreads and stuck-at faults."""

from __future__ import annotations

import math

import torch


def misread_probability(noise: float, bits_per_cell: int) -> float:
    """Chance that Gaussian read noise (σ as a fraction of the conductance range) crosses to a neighbour level.

    2^b levels split the range into 2^b - 1 gaps; a read errs when the noise exceeds half a gap,
    on either side (interior levels) — an upper bound, taken for every cell.
    """
    if noise <= 0:
        return 0.0
    half_gap = 0.5 / (2**bits_per_cell - 1)
    return math.erfc(half_gap / (noise * math.sqrt(2)))


def stored_weights(w: torch.Tensor, weight_bits: int, bits_per_cell: int, misread_prob: float,
                   stuck_rate: float, gen: torch.Generator) -> torch.Tensor:
    """Weights as read back from the dense crossbar (integer-valued float, same shape).

    A signed weight is stored offset-binary in ceil(weight_bits / b) cells of b bits. Each cell
    independently reads one level up or down with `misread_prob` (clipped to the level range) and
    is stuck at its lowest or highest level with `stuck_rate` (half each).
    """
    if misread_prob == 0 and stuck_rate == 0:
        return w
    b, cells = bits_per_cell, -(-weight_bits // bits_per_cell)
    top = 2**b - 1
    offset = 2 ** (weight_bits - 1)
    u = (w.to(torch.int64) + offset)
    levels = torch.stack([(u >> (b * i)) & top for i in range(cells)])
    if misread_prob:
        hit = torch.rand(levels.shape, generator=gen) < misread_prob
        step = torch.where(torch.rand(levels.shape, generator=gen) < 0.5, -1, 1)
        levels = torch.where(hit, (levels + step).clamp(0, top), levels)
    if stuck_rate:
        stuck = torch.rand(levels.shape, generator=gen) < stuck_rate
        high = torch.rand(levels.shape, generator=gen) < 0.5
        levels = torch.where(stuck, torch.where(high, top, 0), levels)
    u = sum(levels[i] << (b * i) for i in range(cells))
    lim = 2 ** (weight_bits - 1) - 1
    return (u - offset).clamp(-lim - 1, lim).to(w.dtype)
