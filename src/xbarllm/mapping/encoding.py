"""Balanced base-(2^(S+1)-1) activation encoding: digit counts and the scale-cycle product (Table 7)."""

from __future__ import annotations

import numpy as np


def base(s: int) -> int:
    """Radix of the balanced encoding with S rows per activation: 2^(S+1) - 1 (S=2 -> 7)."""
    if s < 1:
        raise ValueError(f"encoding S must be >= 1, got {s}")
    return 2 ** (s + 1) - 1


def elements_per_crossbar(rows, s, copies=1):
    """Reduction elements one crossbar column holds: S rows each, repeated `copies` times (arrays broadcast)."""
    return rows // (s * copies)


def digits(s: int, act_bits: int = 8) -> int:
    """Digits (= crossbar cycles) to hold every value of a symmetric act_bits integer.

    Symmetric means |x| <= 2^(b-1) - 1, the range Table 7 implies: at S=7 one base-255 digit
    (-127..127) suffices for INT8, which -128 would not fit.
    """
    b, top = base(s), 2 ** (act_bits - 1) - 1
    n, reach = 1, (base(s) - 1) // 2
    while reach < top:
        n += 1
        reach = (b**n - 1) // 2
    return n


def digits_of(s, act_bits):
    """`digits` for a scalar S, or elementwise for arrays of S and act_bits (stacked specs)."""
    if np.ndim(s) == 0 and np.ndim(act_bits) == 0:
        return digits(int(s), int(act_bits))
    return np.vectorize(digits, otypes=[np.int64])(s, act_bits)


def scale_cycle_product(s: int, act_bits: int = 8) -> int:
    """S × cycles: the crossbar area factor (S rows per activation) times the digit count."""
    return s * digits(s, act_bits)
