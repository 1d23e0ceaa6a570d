"""One-column products (N = 1: norm statistics, softmax row sums) through the crossbar, vectorised across rows
(numba).

Such a product has one output per row, so the general loop (`kernel._crossbar`) runs its column loops once per
row and its per-row work dominates: digits, buffers, and a scalar noise draw per conversion (6.2 µs per 384-element
row here). Here vector lanes run over a chunk of rows instead: per tile and digit, every row's column sums, noise,
conversion and tile sum advance together. Bit for bit the numbers of the general loop (`tests/test_sim.py`).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from xbarllm.sim.column import _adc, _clip, _coins, _digits, _largest, _rtn_weight, _tie_key
from xbarllm.sim.rng import _GAMMA, _mix, _normal_pair

_LANES = 128  # rows per parallel task


@njit(inline="always")
def _column_pair(d, w, chi, lo, hi, noisy):
    """(z⁺, z⁻, v⁺, v⁻, conducting digits) of one output column for digits d[lo:hi] and integer weights w, as
    exact integers: z± = (|d|·|w| ± d·w)/2 and v± = (e·w² ± e·sgn d·w|w|)/2, e = `_rtn_weight`(|d|, chi).
    The general loop adds the same terms in float32 in order of k, exact while a sum stays within 2^24; above
    that this function does the same, so results agree bit for bit."""
    sa = sd = va = vd = np.int64(0)
    conducting = 0
    for k in range(lo, hi):
        v, c = d[k], w[k]
        a, m = abs(v), abs(c)
        sa += a * m
        sd += v * c
        if noisy:
            e = _rtn_weight(a, chi)
            va += e * c * c
            vd += (e if v > 0 else -e) * c * m
        conducting += a != 0
    if max(sa, va) <= 1 << 24:
        return (np.float32((sa + sd) >> 1), np.float32((sa - sd) >> 1), np.float32((va + vd) >> 1),
                np.float32((va - vd) >> 1), conducting)
    zero = zp = zm = vp = vm = np.float32(0)
    for k in range(lo, hi):
        v, c = d[k], np.float32(w[k])
        f, e = np.float32(abs(v)), np.float32(_rtn_weight(abs(v), chi))
        pos, neg = (max(c, zero), max(-c, zero)) if v > 0 else (max(-c, zero), max(c, zero))
        zp += f * pos
        zm += f * neg
        if noisy:
            vp += e * pos * pos
            vm += e * neg * neg
    return zp, zm, vp, vm, conducting


@njit(parallel=True, cache=True)
def _one_column(x, w, M, chi, b, digits, kt, rtn, key, row_keys, lsb, full, lsb2, full2, out, over, peak):
    """Row r = g·M + m of x (G·M, K) times its column w[r] (integer-valued float32, copies applied) into out[r]
    (float64), for a product of G groups of M rows; the other arguments as `kernel._crossbar`'s (row_keys
    flattened to (G·M,)), with one entry of `over` and of `peak` per chunk of _LANES rows."""
    R, K = x.shape
    T = (K + kt - 1) // kt
    noisy = rtn > 0
    quantise = lsb[0, 0] > 0
    inv = 1.0 / b
    for c in prange((R + _LANES - 1) // _LANES):
        r0 = c * _LANES
        n = min(_LANES, R - r0)
        streams, sets = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
        for j in range(n):  # row r0 + j's first noise stream (`kernel._crossbar`'s numbering) and tie column set
            g = (r0 + j) // M
            streams[j], sets[j] = g * T * digits * M + (r0 + j) % M, g * T * digits
        rest, wt = np.empty((kt, n)), np.empty((kt, n))
        sa, sd, va, vd = np.empty(n), np.empty(n), np.zeros(n), np.zeros(n)
        zp, zm = np.empty(n, dtype=np.float32), np.empty(n, dtype=np.float32)
        vp, vm = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.float32)
        acc = np.zeros((digits, n), dtype=np.float32)
        for t in range(T):
            lo = t * kt
            width = min(K, lo + kt) - lo
            xs, ws = x[r0:r0 + n, lo:lo + width], w[r0:r0 + n, lo:lo + width]
            for k in range(width):  # this tile's activations and weights, lanes innermost
                for j in range(n):
                    rest[k, j] = xs[j, k]
                    wt[k, j] = ws[j, k]
            for p in range(digits):
                sa[:] = 0
                sd[:] = 0
                if noisy:
                    va[:] = 0
                    vd[:] = 0
                for k in range(width):  # digit p (as `column._digits`) and `_column_pair`'s sums, exact in float64
                    for j in range(n):
                        q = np.rint(rest[k, j] * inv)
                        v = rest[k, j] - b * q
                        rest[k, j] = q
                        cw = wt[k, j]
                        a, mw = abs(v), abs(cw)
                        sa[j] += a * mw
                        sd[j] += v * cw
                        if noisy:
                            e = np.float64(_rtn_weight(np.int64(a), chi))
                            va[j] += e * cw * cw
                            vd[j] += (e if v > 0 else -e) * cw * mw
                column_set = np.uint64(t * digits + p)  # uint64 throughout: uint64 + int64 would give float64
                wide = False
                for j in range(n):  # z± = (sa ± sd)/2, v± = (va ± vd)/2: even integers, so halving is exact
                    zp[j], zm[j] = np.float32((sa[j] + sd[j]) * 0.5), np.float32((sa[j] - sd[j]) * 0.5)
                    vp[j], vm[j] = np.float32((va[j] + vd[j]) * 0.5), np.float32((va[j] - vd[j]) * 0.5)
                    wide |= max(sa[j], va[j]) > 1 << 24
                for j in range(n if wide else 0):  # float32 sums in order of k (rare: copies and long tiles)
                    if max(sa[j], va[j]) > 1 << 24:
                        dig, rest1 = np.empty((digits, K), dtype=np.int64), np.empty(K)
                        _digits(x[r0 + j], b, rest1, dig)
                        zp[j], zm[j], vp[j], vm[j], _ = _column_pair(dig[p], w[r0 + j].astype(np.int64), chi, lo,
                                                                     lo + width, noisy)
                if peak.shape[0]:
                    peak[c, t, p] = max(peak[c, t, p], _largest(zp, zm))
                if noisy:  # a row without conducting cells has v± = 0 and takes no noise
                    for j in range(n):
                        ep, em = _normal_pair(_mix(key ^ (streams[j] + column_set * np.uint64(M)) * _GAMMA), 0)
                        zp[j] += np.sqrt(vp[j]) * rtn * ep
                        zm[j] += np.sqrt(vm[j]) * rtn * em
                if not quantise:
                    for j in range(n):
                        acc[p, j] += zp[j] - zm[j]
                    continue
                step, top, step2, top2 = lsb[t, p], full[t, p], lsb2[t, p], full2[t, p]
                high = 0
                for j in range(n):
                    up = down = np.float32(-1)
                    if not noisy:
                        up, down = _coins(_tie_key(row_keys[r0 + j], sets[j] + column_set), 0)
                    if step2 <= 0:
                        acc[p, j] += _clip(zp[j], step, top, up) - _clip(zm[j], step, top, down)
                        high += (zp[j] > top) + (zm[j] > top)
                    else:
                        qp, rp = _adc(zp[j], step, top, step2, top2, up)
                        qm, rm = _adc(zm[j], step, top, step2, top2, down)
                        acc[p, j] += qp - qm
                        high += rp + rm
                over[c] += high
        for j in range(n):  # shift-and-add as `column._shift_add`
            total = 0.0
            for p in range(digits):
                total += np.float64(b) ** p * np.float64(acc[p, j])
            out[r0 + j] = total
