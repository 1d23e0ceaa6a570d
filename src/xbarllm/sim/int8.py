"""The int8 path of the crossbar product (one group, |w| <= 127, tiles of 64+ elements: the Linears without
copies): per tile, torch's int8 GEMM gives every digit's column sums and RTN variances as exact integers, and
`_convert_tile` adds noise, converts and accumulates. On CPUs with VNNI an int8 GEMM runs ~9x faster than fp32
(2048x384x1536: 2.3 ms vs 21.9 ms on one thread here). Bit for bit the same numbers as `kernel._crossbar`.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from xbarllm.sim.column import _convert, _digits, _largest, _rtn_weight, _shift_add_rows, _tie_key

# GEMM outputs held per tile and row chunk: 16 MB. Noisy Linears (1800 rows) took 0.71-0.89x their time at 4 MB on
# an Intel Xeon (stop 31: fewer Python-side calls); on the AMD EPYC 256 KB to 16 MB measured the same (stop 21).
_CHUNK_BYTES = 1 << 24


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


@njit(inline="always")
def _halves(s, d, scale):
    """scale·(s + d)/2 and scale·(s - d)/2 in float32, for integer sums whose s ± d are even and >= 0 (as
    2z± and 2v± are), so the shifts divide exactly."""
    s, d = np.int64(s), np.int64(d)
    return scale * np.float32((s + d) >> 1), scale * np.float32((s - d) >> 1)


@njit(parallel=True, cache=True)
def _convert_tile(sa, sd, va, vd, nz, r, rtn, key, stream0, M, row_keys, step, top, step2, top2, quantise, acc, over,
                  peak, m0, t):
    """Tile t of the int8 path for rows m0:m0+R: sa = |A|·|W| and sd = A·W (D, R, N) give z± = r(sa ± sd)/2; with
    noise, va = E·W² and vd = (E·sgn A)·(sgn W·W²) as 7-bit halves [hi | lo] (D, R, 2N) give v± = r²(va ± vd)/2;
    nz (D, R) marks digit slices where some resistor conducts. acc (R, D, N) += q⁺ - q⁻, over (R,) += sums over range;
    unless peak (M, T, D) is empty, peak[m0 + i, t] is raised to row m0 + i's largest noise-free z± (the whole
    array is passed, always C-contiguous, so that one compiled function serves calibration and runs).
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
                peak[m0 + i, t, p] = max(peak[m0 + i, t, p], _largest(zp, zm))
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
        nzc, acc_c, over_c = nz[:, c].reshape(T, digits, R), acc[:R], over[m0:m0 + R]
        acc_c[:] = 0
        for t in range(T):
            torch._int_mm(pa[t], wa[t], out=sa)
            torch._int_mm(pd[t], wi[t], out=sd)
            if noisy:
                torch._int_mm(pe[t], hl[t], out=va)
                torch._int_mm(ps[t], hls[t], out=vd)
            _convert_tile(*outs, nzc[t], r, rtn, key, t * digits * M + m0, M, row_keys[0, m0:m0 + R], lsb[t], full[t],
                          lsb2[t], full2[t], quantise, acc_c, over_c, peak, m0, t)
        _shift_add_rows(acc_c, b, out[0, m0:m0 + R])
    return int(over.sum())
