"""One fused pass from raw column products to the recombined output (numba, parallel over output rows).

The crossbar path spends most of its time after the matmuls: per tile and digit, split into '+'/'-'
columns, add RTN noise, clamp/round by the ADC, then shift-and-add. In torch that is ~25 passes and
two serial Gaussian draws over arrays T·D times larger than the output; here it is one parallel pass.
Noise comes from a counter-based generator (SplitMix64 keyed by the call and the element index, then
Marsaglia-Tsang's 128-layer ziggurat), so numbers do not depend on the thread count.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange


_R = 3.442619855899  # start of the normal's tail in Marsaglia & Tsang's 128-layer ziggurat
_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64 increment


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


@njit(parallel=True, cache=True)
def _recombine(signed, absolute, v_signed, v_abs, rtn, key, lsb, full, scale, digits, out, k, w, f):
    G, T, DM, N = signed.shape
    M = DM // digits
    noisy = rtn > 0
    quantise = lsb[0, 0] > 0
    for gm in prange(G * M):
        g, m = gm // M, gm % M
        acc = np.zeros(N, dtype=np.float64)
        tile_sum = np.empty(N, dtype=np.float32)
        eps = np.empty(2 * N, dtype=np.float32)
        for p in range(digits):
            tile_sum[:] = 0
            r = p * M + m
            for t in range(T):
                step, top = lsb[t, p], full[t, p]
                if noisy:
                    _fill_normals(_mix(key ^ np.uint64((g * T + t) * DM + r) * _GAMMA), eps, k, w, f)
                for n in range(N):
                    s = signed[g, t, r, n]
                    zp = (absolute[g, t, r, n] + s) * np.float32(0.5)
                    zm = zp - s
                    if noisy:
                        vs = v_signed[g, t, r, n]
                        vp = (v_abs[g, t, r, n] + vs) * np.float32(0.5)
                        vm = vp - vs
                        zp += np.sqrt(max(vp, np.float32(0))) * rtn * eps[2 * n]
                        zm += np.sqrt(max(vm, np.float32(0))) * rtn * eps[2 * n + 1]
                    if quantise:
                        zp = np.rint(min(max(zp, np.float32(0)), top) / step) * step
                        zm = np.rint(min(max(zm, np.float32(0)), top) / step) * step
                    tile_sum[n] += zp - zm
            for n in range(N):
                acc[n] += scale[p] * np.float64(tile_sum[n])
        out[g, m, :] = acc


def recombine(signed: np.ndarray, absolute: np.ndarray, v_signed: np.ndarray, v_abs: np.ndarray, rtn: float,
              key: int, lsb: np.ndarray, full: np.ndarray, scale: np.ndarray, digits: int, out: np.ndarray) -> None:
    """out[g, m, n] = Σ_p scale[p] Σ_t (ADC(z⁺ + σ⁺ε⁺) - ADC(z⁻ + σ⁻ε⁻)) for (G, T, D·M, N) float32 column products.

    z± = (|d|·|w| ± d·w) / 2 per column, in unit products; σ± = rtn·sqrt(v±) with v± = (v_abs ± v_signed) / 2
    (noise only when rtn > 0; ε± standard normal, seeded by `key`); ADC(z) = round(clamp(z, 0, full[t, p]) /
    lsb[t, p]) · lsb[t, p], skipped when lsb[0, 0] <= 0. `out` is (G, M, N) float64. Runs on as many threads
    as torch uses, so idle numba workers do not compete with torch's.
    """
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))
    _recombine(signed, absolute, v_signed, v_abs, np.float32(rtn), np.uint64(key), lsb, full, scale, digits, out,
               _K, _W, _F)


@njit(cache=True)
def _draws(key, n, k, w, f):
    out = np.empty(n, dtype=np.float32)
    _fill_normals(_mix(np.uint64(key)), out, k, w, f)
    return out


def normal_draws(key: int, n: int) -> np.ndarray:
    """n standard normal draws from the stream the kernel's noise uses (for checking its statistics)."""
    return _draws(np.uint64(key), n, _K, _W, _F)
