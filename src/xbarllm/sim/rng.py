"""Counter-based standard normal draws for the crossbar kernels (numba): SplitMix64 keyed by a stream
number, then Marsaglia & Tsang's 128-layer ziggurat, so numbers do not depend on the thread count."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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


@njit(cache=True)
def _draws(key, n, k, w, f):
    out = np.empty(n, dtype=np.float32)
    _fill_normals(_mix(np.uint64(key)), out, k, w, f)
    return out


def normal_draws(key: int, n: int) -> np.ndarray:
    """n standard normal draws from the stream the kernel's noise uses (for checking its statistics)."""
    return _draws(np.uint64(key), n, _K, _W, _F)
