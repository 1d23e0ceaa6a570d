"""Counter-based standard normal draws for the crossbar kernels (numba): pair n of a stream is the Box-Muller
transform of SplitMix64 hash n, so numbers depend on neither the thread count nor the order of evaluation,
and loops over n vectorise (no table lookups, no rejection, no libm calls).

Box-Muller: (ρ cos 2πt, ρ sin 2πt) with ρ = √(-2 ln u), u = (h_hi + ½)·2⁻³² and t = h_lo·2⁻³² from the hash's
32-bit halves, in float32. ln, cos and sin are Cephes' float32 polynomials (logf; sinf/cosf on [-π/4, π/4]),
within 1.1e-7 of float64 libm (tested). The smallest u bounds |x| by √(66 ln 2) = 6.76; P(|x| > 6.76) ≈ 1.4e-11.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_GAMMA = np.uint64(0x9E3779B97F4A7C15)  # SplitMix64 increment
_F = np.float32


@intrinsic
def _bits(typingctx, x):
    """The int32 bit pattern of a float32."""
    return types.int32(types.float32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))


@intrinsic
def _from_bits(typingctx, b):
    """The float32 with bit pattern b (int32)."""
    return types.float32(types.int32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.FloatType())


@njit(inline="always")
def _mix(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def _log(x):
    """ln x for a normal float32 x > 0 (Cephes logf)."""
    b = _bits(x)
    e = _F((b >> 23) - 126)
    m = _from_bits((b & 0x7FFFFF) | 0x3F000000)  # x = m·2^e, m in [0.5, 1)
    small = m < _F(0.70710677)
    e = e - _F(1) if small else e
    m = m + m - _F(1) if small else m - _F(1)
    z = m * m
    y = _F(7.0376836292e-2)
    for c in (-1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1, -1.6668057665e-1,
              2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1):
        y = y * m + _F(c)
    y = y * m * z + e * _F(-2.12194440e-4) - _F(0.5) * z
    return m + y + e * _F(0.693359375)


@njit(inline="always")
def _cos_sin(t):
    """(cos 2πt, sin 2πt) for t in [0, 1]: the nearest quarter turn q, then Cephes cosf/sinf on [-π/4, π/4]."""
    q = np.rint(t * _F(4))
    x = (t - q * _F(0.25)) * _F(6.2831855)
    z = x * x
    s = x + x * z * ((_F(-1.9515295891e-4) * z + _F(8.3321608736e-3)) * z - _F(1.6666654611e-1))
    c = _F(1) - _F(0.5) * z + z * z * ((_F(2.443315711809948e-5) * z - _F(1.388731625493765e-3)) * z
                                       + _F(4.166664568298827e-2))
    k = np.int32(q)
    odd = (k & 1) == 1  # a quarter turn swaps cos and sin, and flips signs
    cs, sn = (s, c) if odd else (c, s)
    return (-cs if ((k + 1) & 2) == 2 else cs), (-sn if (k & 2) == 2 else sn)


@njit(inline="always")
def _normal_pair(state, n):
    """Two independent standard normal float32 draws: pair n of the stream that starts at `state`."""
    h = _mix(state + np.uint64(n + 1) * _GAMMA)
    u = (_F(np.int64(h >> np.uint64(32))) + _F(0.5)) * _F(2.0**-32)
    t = _F(np.int64(h & np.uint64(0xFFFFFFFF))) * _F(2.0**-32)
    rho = np.sqrt(_F(-2) * _log(u))
    c, s = _cos_sin(t)
    return rho * c, rho * s


@njit(cache=True)
def _draws(key, n):
    out = np.empty(2 * n, dtype=np.float32)
    state = _mix(np.uint64(key))
    for i in range(n):
        out[2 * i], out[2 * i + 1] = _normal_pair(state, i)
    return out


@njit(cache=True)
def _log_cos_sin(x, t):
    out = np.empty((3, x.shape[0]), dtype=np.float32)
    for i in range(x.shape[0]):
        out[0, i] = _log(x[i])
        out[1, i], out[2, i] = _cos_sin(t[i])
    return out


def normal_draws(key: int, n: int) -> np.ndarray:
    """2n standard normal draws (n pairs, interleaved) from the stream the kernel's noise uses with `key`."""
    return _draws(np.uint64(key), n)


def log_cos_sin(x: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(ln x, cos 2πt, sin 2πt) as the kernel computes them in float32 (for checking against libm)."""
    return _log_cos_sin(np.asarray(x, np.float32), np.asarray(t, np.float32))
