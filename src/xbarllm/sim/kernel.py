"""The crossbar product (numba): digits, column sums, RTN noise, ADC, shift-and-add, bit for bit the same
on two paths.

- `_crossbar` (any group count): each block of output rows walks the weight tiles once (while they are in
  cache), skips zero digits (no resistor conducts) and keeps every column sum in a row-sized buffer.
- The int8 path (one group, |w| <= 127, tiles of 64+ elements: the Linears without copies): per tile,
  torch's int8 GEMM gives every digit's column sums and RTN variances as exact integers, and
  `_convert_tile` adds noise, converts and accumulates. On CPUs with VNNI an int8 GEMM runs ~9x faster
  than fp32 (2048x384x1536: 2.3 ms vs 21.9 ms on one thread here).

Both draw the noise of a column pair from the stream numbered by (group, tile, digit, row), so numbers do
not depend on the thread count or on the path. Without noise, a column sum exactly on an ADC threshold rounds
by a coin hashed from the product's key, the row's values, the column set and the column (`_convert`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange

from xbarllm.mapping.encoding import base
from xbarllm.sim.rng import _GAMMA, _from_bits, _mix, _normal_pair

_ROWS = 16  # output rows per parallel task
_INT8_MIN_TILE = 64  # shorter tiles (copies > 1) stay per row: GEMM outputs outgrow the work (copies 8: 1.6x slower)
_CHUNK_BYTES = 1 << 22  # int8 path: GEMM outputs held per tile and row chunk (4 MB; fastest of 2^18..2^25 here)


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
    """A digit magnitude a's RTN weight: the sum of chi[j] (a tuple: resistor j's χ²) over the bits j set in a."""
    e = np.int64(0)
    for j in range(len(chi)):  # unrolled: chi is a tuple
        e += (a >> j & 1) * chi[j]
    return e


@njit(parallel=True, cache=True)
def _energy_planes(d, chi, da, e, es, nz):
    """|d|, e = `_rtn_weight`(|d|, chi) (at most 127 here) and e·sgn d, row by row, and nz: whether a row has a
    non-zero digit."""
    for r in prange(d.shape[0]):
        bits = np.int8(0)
        for k in range(d.shape[1]):
            v = d[r, k]
            a = abs(v)
            en = np.int8(_rtn_weight(a, chi))
            da[r, k], e[r, k] = a, en
            es[r, k] = -en if v < 0 else en
            bits |= v
        nz[r] = bits != 0


@njit(parallel=True, cache=True)
def _digit_planes(x, b, digits, kt, T, rows, chi, d, da, e, es, nz):
    """The int8 path's activation operands for x (M, K), written into d, da, e, es (T, M·D, kt; d zero where
    tile T - 1 runs past K) and nz (T, M·D): per tile t, a plane of digits d whose rows for chunk m0:m0+R
    (R <= rows) are contiguous and digit-major, [m0·D + p·R + j] for row m0 + j; the same for |d|, e (RTN
    weights from chi) and e·sgn d; and nz: whether any digit of a slice is non-zero."""
    M, K = x.shape
    for m in prange(M):
        m0 = m - m % rows
        dig, rest = np.empty((digits, K), dtype=np.int8), np.empty(K)
        _digits(x[m], b, rest, dig)
        for p in range(digits):
            r = m0 * digits + p * min(rows, M - m0) + m - m0
            for t in range(T):
                d[t, r, :min(kt, K - t * kt)] = dig[p, t * kt:(t + 1) * kt]
    _energy_planes(d.reshape(-1, kt), chi, da.reshape(-1, kt), e.reshape(-1, kt), es.reshape(-1, kt), nz.reshape(-1))


@njit(cache=True)
def _weight_planes(w, kt, T, squares):
    """The int8 path's weight operands for w (K, N), zero-padded to T tiles of kt rows: w, |w| (T, kt, N) and,
    if `squares`, w² in 7-bit halves [w² >> 7 | w² & 127], unsigned and with w's sign (T, kt, 2N)."""
    K, N = w.shape
    wi, hl, hls = np.zeros((T * kt, N), np.int8), np.zeros((T * kt, 2 * N), np.int8), np.zeros((T * kt, 2 * N), np.int8)
    wi[:K] = w.astype(np.int8)
    for k in range(K if squares else 0):
        for n in range(N):
            v = np.int32(wi[k, n])
            hi, lo = np.int8(v * v >> 7), np.int8(v * v & 127)
            hl[k, n], hl[k, N + n] = hi, lo
            hls[k, n], hls[k, N + n] = (-hi, -lo) if v < 0 else (hi, lo)
    return wi.reshape(T, kt, N), np.abs(wi).reshape(T, kt, N), hl.reshape(T, kt, 2 * N), hls.reshape(T, kt, 2 * N)


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


@njit(inline="always")
def _largest(zp, zm):
    """max(zp ∪ zm, 0), as the largest bit pattern: non-negative floats order as their bits, and an integer
    maximum vectorises where a float one does not (a float max in `_convert`'s loop took it from 5.5 to 14.8 ms)."""
    zpi, zmi = zp.view(np.int32), zm.view(np.int32)
    high = np.int32(0)
    for n in range(zp.shape[0]):
        high = max(high, zpi[n], zmi[n])
    return _from_bits(high)


@njit(inline="always")
def _column_pair(d, w, chi, lo, hi, noisy):
    """(z⁺, z⁻, v⁺, v⁻, conducting digits) of one output column (N = 1) for digits d[lo:hi] and integer weights w,
    as exact integers: z± = (|d|·|w| ± d·w)/2 and v± = (e·w² ± e·sgn d·w|w|)/2, e = `_rtn_weight`(|d|, chi).
    The general loop adds the same terms in float32 in order of k, exact while a sum stays within 2^24; above
    that this function does the same, so results agree bit for bit. Without branches or table lookups the loop
    vectorises."""
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
def _crossbar(x, w_pos, w_neg, energy, chi, b, digits, kt, rtn, key, row_keys, lsb, full, lsb2, full2, out, over,
              peak):
    G, M, K = x.shape
    N = w_pos.shape[-1]
    T = (K + kt - 1) // kt
    noisy = rtn > 0
    quantise = lsb[0, 0] > 0
    blocks = (M + _ROWS - 1) // _ROWS  # a block of rows shares each weight tile while it is in cache
    for gb in prange(G * blocks):
        g, m0 = gb // blocks, (gb % blocks) * _ROWS
        rows = min(_ROWS, M - m0)
        dig, rest = np.empty((rows, digits, K), dtype=np.int64), np.empty(K)
        for i in range(rows):
            _digits(x[g, m0 + i], b, rest, dig[i])
        tile_sum = np.zeros((rows, digits, N), dtype=np.float32)
        zp, zm = np.empty(N, dtype=np.float32), np.empty(N, dtype=np.float32)
        vp, vm = np.zeros(N, dtype=np.float32), np.zeros(N, dtype=np.float32)
        w1 = np.empty(K if N == 1 else 0, dtype=np.int64)
        for k in range(w1.shape[0]):
            w1[k] = np.int64(w_pos[g, k, 0] - w_neg[g, k, 0])
        for t in range(T):
            for i in range(rows):
                for p in range(digits):
                    zp[:] = 0
                    zm[:] = 0
                    if noisy:
                        vp[:] = 0
                        vm[:] = 0
                    if N == 1:
                        zp[0], zm[0], vp[0], vm[0], conducting = _column_pair(
                            dig[i, p], w1, chi, t * kt, min(K, (t + 1) * kt), noisy)
                        kk_end = t * kt  # the general loop below does nothing
                    else:
                        conducting, kk_end = 0, min(K, (t + 1) * kt)
                    for kk in range(t * kt, kk_end):
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
                    if peak.shape[0]:
                        peak[gb, t, p] = max(peak[gb, t, p], _largest(zp, zm))
                    stream = np.uint64((g * T + t) * digits * M + p * M + m0 + i)
                    ties = _tie_key(row_keys[g, m0 + i], (g * T + t) * digits + p)
                    over[gb] += _convert(zp, zm, vp, vm, rtn, key, stream, ties, lsb[t, p], full[t, p], lsb2[t, p],
                                         full2[t, p], quantise, tile_sum[i, p])
        _shift_add(tile_sum, b, out[g, m0:m0 + rows])


@njit(inline="always")
def _halves(s, d, scale):
    """scale·(s + d)/2 and scale·(s - d)/2 in float32, for integer sums whose s ± d are even and >= 0 (as
    2z± and 2v± are), so the shifts divide exactly."""
    s, d = np.int64(s), np.int64(d)
    return scale * np.float32((s + d) >> 1), scale * np.float32((s - d) >> 1)


@njit(parallel=True, cache=True)
def _convert_tile(sa, sd, va, vd, nz, r, rtn, key, stream0, M, row_keys, step, top, step2, top2, quantise, acc, over,
                  peak):
    """One tile of the int8 path for R rows: sa = |A|·|W| and sd = A·W (D, R, N) give z± = r(sa ± sd)/2; with
    noise, va = E·W² and vd = (E·sgn A)·(sgn W·W²) as 7-bit halves [hi | lo] (D, R, 2N) give v± = r²(va ± vd)/2;
    nz (D, R) marks digit slices where some resistor conducts. acc (R, D, N) += q⁺ - q⁻, over (R,) += sums over range;
    unless peak (R, D) is empty, it is raised to each row's largest noise-free z±.
    """
    D, R, N = sa.shape
    noisy = rtn > 0
    r2 = r * r
    for i in prange(R):
        zp, zm = np.empty(N, dtype=np.float32), np.empty(N, dtype=np.float32)
        vp, vm = np.zeros(N, dtype=np.float32), np.zeros(N, dtype=np.float32)
        for p in range(D):
            if not nz[p, i]:  # every column sum is exactly 0 and converts to 0
                continue
            for n in range(N):
                zp[n], zm[n] = _halves(sa[p, i, n], sd[p, i, n], r)
            if peak.shape[0]:
                peak[i, p] = max(peak[i, p], _largest(zp, zm))
            if noisy:
                for n in range(N):
                    vp[n], vm[n] = _halves(128 * np.int64(va[p, i, n]) + va[p, i, N + n],
                                           128 * np.int64(vd[p, i, n]) + vd[p, i, N + n], r2)
            ties = _tie_key(row_keys[i], stream0 // M + p)  # column set t·D + p
            over[i] += _convert(zp, zm, vp, vm, rtn, key, np.uint64(stream0 + p * M + i), ties, step[p], top[p],
                                step2[p], top2[p], quantise, acc[i, p])


def _int8_path(x, w, chi, b, digits, kt, r, rtn, key, row_keys, lsb, full, lsb2, full2, out, peak):
    """The int8 path of `crossbar` for one group (x: 1 × M × K, w: 1 × K × N, |w| <= 127); returns the count of
    sums over range. Unless peak (M, T, D) is empty, it gets each row's largest noise-free column sums."""
    _, M, K = x.shape
    N, T = w.shape[-1], -(-K // kt)
    noisy = rtn > 0
    rows = min(M, max(1, _CHUNK_BYTES // ((6 if noisy else 2) * 4 * digits * N)))
    # operands from torch's allocator (huge pages), like the buffers below
    d = (torch.zeros if K % kt else torch.empty)((T, M * digits, kt), dtype=torch.int8)
    da, e, es = torch.empty_like(d), torch.empty_like(d), torch.empty_like(d)
    nz = torch.empty((T, M * digits), dtype=torch.bool).numpy()
    _digit_planes(x[0], b, digits, kt, T, rows, chi, *(v.numpy() for v in (d, da, e, es)), nz)
    wi, wa, hl, hls = (torch.from_numpy(v) for v in _weight_planes(w[0], kt, T, noisy))
    acc = np.empty((rows, digits, N), dtype=np.float32)  # one chunk's tile sums, shift-added after its last tile
    over = np.zeros(M, dtype=np.int64)
    # GEMM outputs, allocated once: fresh multi-MB outputs per call cost more in page faults than the GEMM
    sums = torch.empty((2, digits * rows, N), dtype=torch.int32)
    var = torch.empty((2, digits * rows, 2 * N) if noisy else (2, 0, 0), dtype=torch.int32)
    quantise = bool(lsb[0, 0] > 0)
    r, rtn, key = np.float32(r), np.float32(rtn), np.uint64(key)
    for m0 in range(0, M, rows):  # Python work per chunk and tile is kept small: it runs ~40 times per product
        R = min(rows, M - m0)
        sa, sd, va, vd = sums[0, :digits * R], sums[1, :digits * R], var[0, :digits * R], var[1, :digits * R]
        outs = [v.view(digits, R, -1).numpy() for v in (sa, sd, va, vd)]
        c = slice(m0 * digits, (m0 + R) * digits)  # this chunk's rows of the planes, (D·R, kt) digit-major
        pd, pa, pe, ps = d[:, c], da[:, c], e[:, c], es[:, c]
        nzc, acc_c, over_c, peak_c = nz[:, c].reshape(T, digits, R), acc[:R], over[m0:m0 + R], peak[m0:m0 + R]
        acc_c[:] = 0
        for t in range(T):
            torch._int_mm(pa[t], wa[t], out=sa)
            torch._int_mm(pd[t], wi[t], out=sd)
            if noisy:
                torch._int_mm(pe[t], hl[t], out=va)
                torch._int_mm(ps[t], hls[t], out=vd)
            _convert_tile(*outs, nzc[t], r, rtn, key, t * digits * M + m0, M, row_keys[0, m0:m0 + R], lsb[t], full[t],
                          lsb2[t], full2[t], quantise, acc_c, over_c, peak_c[:, t])
        _shift_add_rows(acc_c, b, out[0, m0:m0 + R])
    return int(over.sum())


def use_torch_threads() -> None:
    """Run numba's parallel loops on as many threads as torch uses (and keep torch's count)."""
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if torch.get_num_threads() != threads:  # launching numba's OpenMP pool resets the process's thread count
        torch.set_num_threads(threads)


def crossbar(x: np.ndarray, w: np.ndarray, energy: np.ndarray, s: int, digits: int, kt: int, rtn: float, key: int,
             lsb: np.ndarray, full: np.ndarray, coarse: tuple[np.ndarray, np.ndarray] | None = None,
             copies: int = 1, peaks: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """(G, M, K) @ (G, K, N) integer-valued float32 through the crossbar at S = s, with every element's rows
    repeated `copies` times (the kernel sees weights copies·w); returns the float64 product and the number of
    column sums above the ADC's range (clipped, or converted twice).

    Per output row, tile of kt rows and digit p: the '+' column sums |d|·|w| over products of positive
    sign, the '-' column the others (z±, unit products); with rtn > 0 each gets N(0, rtn² v±), v± = Σ χ²·w²
    over its conducting cells (`energy[|d|]` = Σ χ² of a digit's resistors), seeded by `key`; the ADC gives
    round(clamp(z, 0, full[t, p]) / lsb[t, p]) · lsb[t, p] (skipped when lsb[0, 0] <= 0; without noise, a sum
    exactly halfway between two codes rounds by a coin, see `_convert`); out = Σ_p b^p Σ_t (q⁺ - q⁻). With
    `coarse` = (lsb2, full2), the worst-case range, a sum above full[t, p] is converted again
    (the ADC's over-range flag) with lsb and full raised by the smallest power of two that covers it, or on
    the worst-case range if that is narrower. Column sums are exact in float32 below
    2^24. If `peaks` (T × D float32) is given, it is set to the largest noise-free z± per tile and digit (ADC
    calibration). Runs on as many threads as torch uses.
    """
    use_torch_threads()
    b = base(s)
    chi = tuple(int(energy[1 << j]) for j in range(s))  # resistor j's χ²; a digit's RTN weight is their sum
    if any(energy[a] != sum(c for j, c in enumerate(chi) if a >> j & 1) for a in range(len(energy))):
        raise ValueError("energy: a digit's RTN weight must be the sum of its resistors' (energy[2^j])")
    # Large buffers come from torch, whose allocator asks for transparent huge pages: first-touch page faults on
    # a fresh 8 MB numpy buffer took 9.9 ms here against 2.1 ms.
    out = torch.empty((x.shape[0], x.shape[1], w.shape[-1]), dtype=torch.float64).numpy()
    lsb2, full2 = coarse if coarse is not None else (np.zeros_like(lsb), np.zeros_like(full))
    tied = rtn <= 0 and lsb.size and lsb.flat[0] > 0  # noise-free and converted: ties draw coins per row
    row_keys = _row_keys(x, np.uint64(key)) if tied else np.zeros(x.shape[:2], dtype=np.uint64)
    int8 = x.shape[0] == 1 and kt >= _INT8_MIN_TILE and w.size and np.abs(w).max() <= 127 and energy.max() <= 127
    T = -(-x.shape[-1] // kt)
    tasks = x.shape[1] if int8 else x.shape[0] * -(-x.shape[1] // _ROWS)  # rows or parallel tasks: one peak each
    peak = np.zeros((tasks if peaks is not None else 0, T, digits), dtype=np.float32)
    if int8:
        over = _int8_path(x, w, chi, b, digits, kt, copies, rtn, key, row_keys, lsb, full, lsb2, full2, out, peak)
    else:
        w = w * copies
        w_pos, w_neg = np.maximum(w, 0), np.maximum(-w, 0)
        count = np.zeros(tasks, dtype=np.int64)
        _crossbar(x, w_pos, w_neg, energy, chi, b, digits, kt, np.float32(rtn),
                  np.uint64(key), row_keys, lsb, full, lsb2, full2, out, count, peak)
        over = int(count.sum())
    if peaks is not None:
        peaks[:] = peak.max(axis=0, initial=0)
    return out, over
