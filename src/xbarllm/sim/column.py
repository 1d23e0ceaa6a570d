"""What both crossbar paths (`kernel`, `int8`) do per output row (numba): balanced digits, RTN weights, the
noise on a row's column sums, the ADC with its tie coins, and shift-and-add.

The noise of a column pair comes from the stream numbered by (group, tile, digit, row), so numbers do not depend
on the thread count or on the path. Without noise, a column sum exactly on an ADC threshold rounds by a coin
hashed from the product's key, the row's values, the column set and the column (`_convert`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from xbarllm.sim.rng import _GAMMA, _from_bits, _mix, _normal_pair

_ROWS = 16  # output rows per parallel task


@njit(inline="always")
def _fine(z, step, top):
    """A column sum z clamped to the ADC's range [0, top], in steps."""
    return min(max(z, np.float32(0)), top) / step


@njit(inline="always")
def _round(u, up):
    """rint(u), except that with up >= 0 a u exactly halfway between two integers rounds up (up = 1) or down (0)."""
    f = np.floor(u)
    return f + up if up >= 0 and u - f == 0.5 else np.rint(u)


@njit(inline="always")
def _clip(z, step, top, up):
    """The ADC's output for a column sum z: clamp to [0, top], round to `step` (ties as `_round` with up)."""
    return np.float32(_round(_fine(z, step, top), up) * step)


@njit(inline="always")
def _adc(z, step, top, step2, top2, up):
    """(ADC output, 1 if converted twice) for a column sum z: `_clip`, but with step2 > 0 a sum above top is
    converted again with the reference raised by the smallest power of two that covers it, or on the
    worst-case range (step2, top2) if that is narrower."""
    if step2 <= 0 or z <= top:
        return _clip(z, step, top, up), 0
    scale = 2.0 ** math.ceil(math.log2(z / top))
    if top * scale >= top2:
        return np.float32(_round(min(z, top2) / step2, up) * step2), 1
    return np.float32(_round(z / (step * scale), up) * step * scale), 1


@njit(parallel=True, cache=True)
def _row_keys(x, key):
    """Per row of x (G, M, K, integer-valued): a hash of `key` and the row's values, Σ_k x_k·c_k mod 2^64 with
    c_k odd SplitMix64 constants: the key of the row's tie coins (`_coins`), the same however rows are split."""
    G, M, K = x.shape
    c = np.empty(K, dtype=np.uint64)
    for k in range(K):
        c[k] = _mix(np.uint64(k + 1) * _GAMMA) | np.uint64(1)
    out = np.empty((G, M), dtype=np.uint64)
    for gm in prange(G * M):
        h = np.uint64(0)
        for k in range(K):
            h += np.uint64(np.int64(x[gm // M, gm % M, k])) * c[k]
        out[gm // M, gm % M] = _mix(key ^ h)
    return out


@njit(inline="always")
def _tie_key(row_key, column_set):
    """The key of one row's tie coins in one column set (group, tile, digit), from its `_row_keys` entry."""
    return _mix(row_key ^ np.uint64(column_set) * _GAMMA)


@njit(inline="always")
def _coins(ties, n):
    """Whether column n's '+' and '-' sums round up if exactly on an ADC threshold (1.0 or 0.0): bits 63 and 62
    of SplitMix64 hash n + 1 of a row's tie key for one column set."""
    c = _mix(ties + np.uint64(n + 1) * _GAMMA)
    return np.float32(c >> np.uint64(63)), np.float32(c >> np.uint64(62) & np.uint64(1))


@njit(inline="always")
def _add_noise(state, n, rtn, zp, zm, vp, vm):
    """Column n's RTN: zp[n] += rtn·√vp[n]·ε⁺ and zm[n] += rtn·√vm[n]·ε⁻, (ε⁺, ε⁻) normal pair n of `state`."""
    ep, em = _normal_pair(state, n)
    zp[n] += np.sqrt(vp[n]) * rtn * ep
    zm[n] += np.sqrt(vm[n]) * rtn * em


@njit(inline="always")
def _add_noise_row(state, rtn, zp, zm, vp, vm):
    """`_add_noise` for every column, n and n + N/2 in one iteration: two independent vector chains hide the
    latency of the Box-Muller polynomials (draws 1.08 → 0.90 ns per pair here)."""
    h = zp.shape[0] // 2
    for n in range(h):
        _add_noise(state, n, rtn, zp, zm, vp, vm)
        _add_noise(state, n + h, rtn, zp, zm, vp, vm)
    for n in range(2 * h, zp.shape[0]):
        _add_noise(state, n, rtn, zp, zm, vp, vm)


@njit(inline="always")
def _convert(zp, zm, vp, vm, rtn, key, stream, ties, step, top, step2, top2, quantise, acc):
    """Convert one row's '+'/'-' column sums zp, zm (variances vp, vm): acc += q⁺ - q⁻ (see `_adc`). Returns the
    number of sums above `top`: clipped, or with step2 > 0 converted twice.

    With rtn > 0, column n's noise is normal pair n of `stream` of `key`. Without noise, about 1/step of the
    sums (integers, on an even step) lie exactly on a threshold; they round up or down by a fair coin, as the
    smallest noise would make them, not to even. The coins come from `ties`, a hash of the row's values and
    the column set (group, tile, digit), so they do not depend on how rows are split, and other rows draw
    other coins."""
    if rtn > 0:
        _add_noise_row(_mix(key ^ stream * _GAMMA), rtn, zp, zm, vp, vm)
    over = 0
    if not quantise:
        for n in range(acc.shape[0]):
            acc[n] += zp[n] - zm[n]
        return over
    even = np.float32(-1)
    if step2 <= 0:  # clip: loops LLVM vectorises; sums over range are counted only where there are some
        zpi, zmi = zp.view(np.int32), zm.view(np.int32)  # the largest sum as in `_largest`, in the same loop
        high = np.int32(0)
        if rtn > 0:  # two loops, so that the noisy one carries no coins
            for n in range(acc.shape[0]):
                acc[n] += _clip(zp[n], step, top, even) - _clip(zm[n], step, top, even)
                high = max(high, zpi[n], zmi[n])
        else:
            for n in range(acc.shape[0]):
                up, down = _coins(ties, n)
                acc[n] += _clip(zp[n], step, top, up) - _clip(zm[n], step, top, down)
                high = max(high, zpi[n], zmi[n])
        if _from_bits(high) > top:
            for n in range(acc.shape[0]):
                over += (zp[n] > top) + (zm[n] > top)
    else:
        for n in range(acc.shape[0]):
            up, down = _coins(ties, n) if rtn <= 0 else (even, even)
            a, ra = _adc(zp[n], step, top, step2, top2, up)
            c, rc = _adc(zm[n], step, top, step2, top2, down)
            over += ra + rc
            acc[n] += a - c
    return over


@njit(inline="always")
def _digits(row, b, rest, out):
    """Balanced base-b digits of an integer-valued row, least significant first, into out (digits, K); rest is a
    float64 buffer of K. b is odd, so rest / b is never within float64's error of a half: rint(rest · (1/b)) is
    the exact nearest quotient."""
    inv = 1.0 / b
    for k in range(row.shape[0]):
        rest[k] = row[k]
    for p in range(out.shape[0]):
        for k in range(row.shape[0]):
            q = np.rint(rest[k] * inv)
            out[p, k] = rest[k] - b * q
            rest[k] = q


@njit(inline="always")
def _rtn_weight(a, chi):
    """A digit magnitude a's RTN weight: the sum of chi[j] (a tuple: resistor j's χ², zero beyond S) over the bits
    j set in a."""
    e = np.int64(0)
    for j in range(len(chi)):  # unrolled: chi is a tuple
        e += (a >> j & 1) * chi[j]
    return e


@njit(inline="always")
def _largest(zp, zm):
    """max(zp ∪ zm, 0), as the largest bit pattern: non-negative floats order as their bits, and an integer
    maximum vectorises where a float one does not (a float max in `_convert`'s loop took it from 5.5 to 14.8 ms)."""
    zpi, zmi = zp.view(np.int32), zm.view(np.int32)
    high = np.int32(0)
    for n in range(zp.shape[0]):
        high = max(high, zpi[n], zmi[n])
    return _from_bits(high)


@njit
def _shift_add(acc, b, out):
    """out[i, n] = Σ_p b^p acc[i, p, n] in float64, added in order of p (acc: rows × digits × N tile sums)."""
    for i in range(acc.shape[0]):
        out[i] = 0.0
        for p in range(acc.shape[1]):
            bp = np.float64(b) ** p
            for n in range(acc.shape[2]):
                out[i, n] += bp * np.float64(acc[i, p, n])


@njit(parallel=True, cache=True)
def _shift_add_rows(acc, b, out):
    """`_shift_add` in parallel over blocks of _ROWS rows."""
    for c in prange(-(-acc.shape[0] // _ROWS)):
        _shift_add(acc[c * _ROWS:(c + 1) * _ROWS], b, out[c * _ROWS:(c + 1) * _ROWS])
