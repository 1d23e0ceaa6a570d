"""The crossbar product (numba): digits, column sums, RTN noise, ADC, shift-and-add, bit for bit the same
on three paths.

- `_crossbar` (any group count): each block of output rows walks the weight tiles once (while they are in
  cache), skips zero digits (no resistor conducts) and keeps every column sum in a row-sized buffer.
- `onecolumn._one_column` (N = 1): lanes across rows.
- The int8 path (`xbarllm.sim.int8`: one group, |w| <= 127, tiles of 64+ elements, the Linears without
  copies): torch's int8 GEMMs give the column sums and RTN variances.

All convert through `xbarllm.sim.column`.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from numba import njit, prange

from xbarllm.mapping.encoding import base
from xbarllm.sim.column import _ROWS, _convert, _digits, _largest, _row_keys, _shift_add, _tie_key
from xbarllm.sim.int8 import _int8_path
from xbarllm.sim.onecolumn import _LANES, _one_column

_INT8_MIN_TILE = 64  # shorter tiles (copies > 1) stay per row: GEMM outputs outgrow the work (copies 8: 1.6x slower)


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
                    if peak.shape[0]:
                        peak[gb, t, p] = max(peak[gb, t, p], _largest(zp, zm))
                    stream = np.uint64((g * T + t) * digits * M + p * M + m0 + i)
                    ties = _tie_key(row_keys[g, m0 + i], (g * T + t) * digits + p)
                    over[gb] += _convert(zp, zm, vp, vm, rtn, key, stream, ties, lsb[t, p], full[t, p], lsb2[t, p],
                                         full2[t, p], quantise, tile_sum[i, p])
        _shift_add(tile_sum, b, out[g, m0:m0 + rows])


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
    exactly halfway between two codes rounds by a coin, see `column._convert`); out = Σ_p b^p Σ_t (q⁺ - q⁻). With
    `coarse` = (lsb2, full2), the worst-case range, a sum above full[t, p] is converted again
    (the ADC's over-range flag) with lsb and full raised by the smallest power of two that covers it, or on
    the worst-case range if that is narrower. Column sums are exact in float32 below
    2^24. If `peaks` (T × D float32) is given, it is set to the largest noise-free z± per tile and digit (ADC
    calibration). Runs on as many threads as torch uses.
    """
    use_torch_threads()
    b = base(s)
    # resistor j's χ²; a digit's RTN weight is their sum. Zero-padded to 4 (S <= 4) or 8 entries: each tuple length
    # is a numba specialisation of every kernel (~30 s to compile), and 8 for every S slowed one-column products
    # by 5-15 % at S = 2 (bench_kernel.py), where 4 measured within noise of 2.
    chi = tuple(int(energy[1 << j]) if j < s else 0 for j in range(4 if s <= 4 else 8))
    if any(energy[a] != sum(c for j, c in enumerate(chi) if a >> j & 1) for a in range(len(energy))):
        raise ValueError("energy: a digit's RTN weight must be the sum of its resistors' (energy[2^j])")
    # Large buffers come from torch, whose allocator asks for transparent huge pages: first-touch page faults on
    # a fresh 8 MB numpy buffer took 9.9 ms here against 2.1 ms.
    out = torch.empty((x.shape[0], x.shape[1], w.shape[-1]), dtype=torch.float64).numpy()
    lsb2, full2 = coarse if coarse is not None else (np.zeros_like(lsb), np.zeros_like(full))
    tied = rtn <= 0 and lsb.size and lsb.flat[0] > 0  # noise-free and converted: ties draw coins per row
    row_keys = _row_keys(x, np.uint64(key)) if tied else np.zeros(x.shape[:2], dtype=np.uint64)
    G, M, K = x.shape
    N, T = w.shape[-1], -(-K // kt)
    one = N == 1  # one output per row: lanes across rows (`onecolumn`)
    int8 = not one and G == 1 and kt >= _INT8_MIN_TILE and w.size and np.abs(w).max() <= 127 and energy.max() <= 127
    tasks = M if int8 else -(-G * M // _LANES) if one else G * -(-M // _ROWS)  # one peak and count each
    peak = np.zeros((tasks if peaks is not None else 0, T, digits), dtype=np.float32)
    count = np.zeros(tasks, dtype=np.int64)
    if int8:
        count[0] = _int8_path(x, w, chi, b, digits, kt, copies, rtn, key, row_keys, lsb, full, lsb2, full2, out, peak)
    elif one:
        w1 = w[..., 0] * np.float32(copies) if copies > 1 else np.ascontiguousarray(w[..., 0])  # read only
        w1 = np.repeat(w1, M, axis=0) if M > 1 else w1  # row g·M + m's column
        _one_column(x.reshape(G * M, K), w1, M, chi, b, digits, kt, np.float32(rtn), np.uint64(key),
                    row_keys.reshape(-1), lsb, full, lsb2, full2, out.reshape(-1), count, peak)
    else:
        w = w * copies
        _crossbar(x, np.maximum(w, 0), np.maximum(-w, 0), energy, chi, b, digits, kt, np.float32(rtn),
                  np.uint64(key), row_keys, lsb, full, lsb2, full2, out, count, peak)
    over = int(count.sum())
    if peaks is not None:
        peaks[:] = peak.max(axis=0, initial=0)
    return out, over
