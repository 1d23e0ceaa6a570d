"""The crossbar product in one parallel pass (numba): digits, column sums, RTN noise, ADC, shift-and-add.

A torch version needs four batched matmuls whose outputs are T·D times larger than the result, then ~25
elementwise passes and two serial Gaussian draws over them. Here each block of output rows walks the
weight tiles once (while they are in cache), skips zero digits (no resistor conducts), and keeps every
column sum in a row-sized buffer. Noise comes from a counter-based generator (SplitMix64 keyed by the
call and the column row, then Marsaglia & Tsang's 128-layer ziggurat), so numbers do not depend on the
thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

_R = 3.442619855899  # start of the normal's tail in Marsaglia & Tsang's 128-layer ziggurat
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64 increment
_ROWS = 16  # output rows per parallel task


def _ziggurat_tables(n: int = 128, r: float = _R, v: float = 9.91256303526217e-3):
    """Marsaglia & Tsang (2000) tables for the standard normal: k (accept bounds on |int32|), w, f."""
    k, w, f = np.zeros(n, np.int64), np.zeros(n), np.zeros(n)
    m1, q, d, t = 2.0**31, v / math.exp(-0.5 * r * r), r, r
    k[0], k[1] = int(d / q * m1), 0
    w[0], w[n - 1] = q / m1, d / m1
    f[0], f[n - 1] = 1.0, math.exp(-0.5 * d * d)
    for i in range(n - 2, 0, -1):
        d = math.sqrt(-2.0 * math.log(v / d + math.exp(-0.5 * d * d)))
        k[i + 1] = int(d / t * m1)
        t = d
        f[i], w[i] = math.exp(-0.5 * d * d), d / m1
    return k, w, f


_K, _W, _F = _ziggurat_tables()


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _uniform(state):
    """(next state, uniform in (0, 1)) from a SplitMix64 stream."""
    state = state + _GAMMA
    return state, (np.float64(_mix(state) >> np.uint64(11)) + 0.5) * 2.0**-53


@njit
def _fill_normals(state, out, k, w, f):
    """Fill `out` with standard normal draws (ziggurat; layer and value from independent bits of one hash);
    returns the next state. The fast path is written out here: numba compiles it ~5x faster than a call."""
    for i in range(out.shape[0]):
        state = state + _GAMMA
        h = _mix(state)
        layer = np.int64(h & np.uint64(127))
        hz = np.int64(np.int32(np.uint32(h >> np.uint64(32))))
        if abs(hz) < k[layer]:  # ~97 % of draws end here
            out[i] = hz * w[layer]
        else:
            state, out[i] = _normal_slow(state, layer, hz, k, w, f)
    return state


@njit
def _normal_slow(state, layer, hz, k, w, f):
    """The ziggurat's rejection branch: the wedge of a layer, or the tail beyond R for layer 0."""
    while True:
        x = hz * w[layer]
        if layer == 0:
            while True:
                state, u1 = _uniform(state)
                state, u2 = _uniform(state)
                xt, y = -math.log(u1) / _R, -math.log(u2)
                if y + y >= xt * xt:
                    return state, (_R + xt) if hz > 0 else -(_R + xt)
        state, u = _uniform(state)
        if f[layer] + u * (f[layer - 1] - f[layer]) < math.exp(-0.5 * x * x):
            return state, x
        state = state + _GAMMA
        h = _mix(state)
        layer = np.int64(h & np.uint64(127))
        hz = np.int64(np.int32(np.uint32(h >> np.uint64(32))))
        if abs(hz) < k[layer]:
            return state, hz * w[layer]


@njit(inline="always")
def _accumulate(a, pos, neg, acc_pos, acc_neg):
    """acc_pos += a·pos and acc_neg += a·neg, element-wise (a loop LLVM vectorises)."""
    for n in range(acc_pos.shape[0]):
        acc_pos[n] += a * pos[n]
        acc_neg[n] += a * neg[n]


@njit(inline="always")
def _accumulate_noisy(a, e, pos, neg, zp, zm, vp, vm):
    """zp += a·pos, zm += a·neg and the variances vp += e·pos², vm += e·neg², in one pass."""
    for n in range(zp.shape[0]):
        p, q = pos[n], neg[n]
        zp[n] += a * p
        zm[n] += a * q
        vp[n] += e * p * p
        vm[n] += e * q * q


@njit(inline="always")
def _adc(z, step, top, step2, top2):
    """(ADC output, 1 if converted twice) for a column sum z: clamp to [0, top] and round to `step`; with
    step2 > 0, a sum above top is converted again with the reference raised by the smallest power of two
    that covers it, or on the worst-case range (step2, top2) if that is narrower."""
    if step2 <= 0 or z <= top:
        return np.float32(np.rint(min(max(z, np.float32(0)), top) / step) * step), 0
    scale = 2.0 ** math.ceil(math.log2(z / top))
    if top * scale >= top2:
        return np.float32(np.rint(min(z, top2) / step2) * step2), 1
    return np.float32(np.rint(z / (step * scale)) * step * scale), 1


@njit(parallel=True, cache=True)
def _crossbar(x, w_pos, w_neg, energy, b, digits, kt, rtn, key, lsb, full, lsb2, full2, out, over,
              k, w, f):
    G, M, K = x.shape
    N = w_pos.shape[-1]
    T = (K + kt - 1) // kt
    noisy = rtn > 0
    quantise = lsb[0, 0] > 0
    blocks = (M + _ROWS - 1) // _ROWS  # a block of rows shares each weight tile while it is in cache
    for gb in prange(G * blocks):
        g, m0 = gb // blocks, (gb % blocks) * _ROWS
        rows = min(_ROWS, M - m0)
        dig = np.empty((rows, digits, K), dtype=np.int64)
        for i in range(rows):
            rest = x[g, m0 + i].astype(np.float64)
            for p in range(digits):  # balanced base-b digits: b is odd, so rest / b is never halfway
                q = np.rint(rest / b)
                dig[i, p] = (rest - b * q).astype(np.int64)
                rest = q
        tile_sum = np.zeros((rows, digits, N), dtype=np.float32)
        zp, zm = np.empty(N, dtype=np.float32), np.empty(N, dtype=np.float32)
        vp, vm = np.zeros(N, dtype=np.float32), np.zeros(N, dtype=np.float32)
        eps = np.empty(2 * N, dtype=np.float32)
        for t in range(T):
            for i in range(rows):
                for p in range(digits):
                    zp[:] = 0
                    zm[:] = 0
                    if noisy:
                        vp[:] = 0
                        vm[:] = 0
                    conducting = 0
                    for kk in range(t * kt, min(K, (t + 1) * kt)):
                        d = dig[i, p, kk]
                        if d == 0:  # no resistor conducts in this row
                            continue
                        conducting += 1
                        # a positive digit adds to '+' through positive weights, a negative one through negative
                        pos, neg = (w_pos[g, kk], w_neg[g, kk]) if d > 0 else (w_neg[g, kk], w_pos[g, kk])
                        if noisy:
                            _accumulate_noisy(np.float32(abs(d)), energy[abs(d)], pos, neg, zp, zm, vp, vm)
                        else:
                            _accumulate(np.float32(abs(d)), pos, neg, zp, zm)
                    if conducting == 0:  # every column sum is exactly 0 and converts to 0
                        continue
                    if noisy:
                        stream = np.uint64((g * T + t) * digits * M + p * M + m0 + i)
                        _fill_normals(_mix(key ^ stream * _GAMMA), eps, k, w, f)
                    step, top, step2, top2 = lsb[t, p], full[t, p], lsb2[t, p], full2[t, p]
                    for n in range(N):
                        a, c = zp[n], zm[n]
                        if noisy:
                            a += np.sqrt(vp[n]) * rtn * eps[2 * n]
                            c += np.sqrt(vm[n]) * rtn * eps[2 * n + 1]
                        if quantise:
                            a, ra = _adc(a, step, top, step2, top2)
                            c, rc = _adc(c, step, top, step2, top2)
                            over[gb] += ra + rc
                        tile_sum[i, p, n] += a - c
        for i in range(rows):
            for n in range(N):
                acc = 0.0
                for p in range(digits):
                    acc += np.float64(b) ** p * np.float64(tile_sum[i, p, n])
                out[g, m0 + i, n] = acc


def crossbar(x: np.ndarray, w: np.ndarray, energy: np.ndarray, b: int, digits: int, kt: int, rtn: float, key: int,
             lsb: np.ndarray, full: np.ndarray, coarse: tuple[np.ndarray, np.ndarray] | None = None
             ) -> tuple[np.ndarray, int]:
    """(G, M, K) @ (G, K, N) integer-valued float32 through the crossbar, one parallel pass; returns the
    float64 product and the number of column sums converted twice.

    Per output row, tile of kt rows and digit p: the '+' column sums |d|·|w| over products of positive
    sign, the '-' column the others (z±, unit products); with rtn > 0 each gets N(0, rtn² v±), v± = Σ χ²·w²
    over its conducting cells (`energy[|d|]` = Σ χ² of a digit's resistors), seeded by `key`; the ADC gives
    round(clamp(z, 0, full[t, p]) / lsb[t, p]) · lsb[t, p] (skipped when lsb[0, 0] <= 0); out = Σ_p b^p Σ_t
    (q⁺ - q⁻). With `coarse` = (lsb2, full2), the worst-case range, a sum above full[t, p] is converted again
    (the ADC's over-range flag) with lsb and full raised by the smallest power of two that covers it, or on
    the worst-case range if that is narrower, and counted. Column sums are exact in float32 below
    2^24. Runs on as many threads as torch uses.
    """
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    w_pos, w_neg = np.maximum(w, 0), np.maximum(-w, 0)
    out = np.empty((x.shape[0], x.shape[1], w.shape[-1]))
    over = np.zeros(x.shape[0] * -(-x.shape[1] // _ROWS), dtype=np.int64)
    lsb2, full2 = coarse if coarse is not None else (np.zeros_like(lsb), np.zeros_like(full))
    _crossbar(x, w_pos, w_neg, energy, b, digits, kt, np.float32(rtn),
              np.uint64(key), lsb, full, lsb2, full2, out, over, _K, _W, _F)
    return out, int(over.sum())


@njit(cache=True)
def _draws(key, n, k, w, f):
    out = np.empty(n, dtype=np.float32)
    _fill_normals(_mix(np.uint64(key)), out, k, w, f)
    return out


def normal_draws(key: int, n: int) -> np.ndarray:
    """n standard normal draws from the stream the kernel's noise uses (for checking its statistics)."""
    return _draws(np.uint64(key), n, _K, _W, _F)
