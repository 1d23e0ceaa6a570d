"""The crossbar's error in distribution (mode "xbar_stat"): the exact integer product plus one Gaussian per output.

The bit-level path (`crossbar.xbar_matmul`) converts 2·T·D column sums per output, each with its own RTN draw,
and shift-adds them: out = Σ_p B^p Σ_t (q⁺ - q⁻). Its error from the integer product has two parts:
- RTN: independent Gaussians, so their weighted sum is exactly one Gaussian of variance
  rtn_e² Σ_p B^2p Σ_k χ²(d_pk)·y_k² (rtn_e = rtn/√copies; χ²(d) the RTN weight of digit d's resistors);
- ADC rounding: taken here as independent and uniform over the step, lsb²/12 per conversion with noise,
  (lsb² - 1)/12 without (noise-free sums are integers; (lsb² + 2)/12 for an even step), times B^2p. Only
  conversions of non-empty columns round: a tile-digit slice with c non-zero digits is taken to fill 2·(1 - 2^-c)
  of its '+'/'-' columns (weights of random sign).
Not modelled: clipping and reconversion (`SimConfig` allows this mode only with full-scale ranges), and the
correlation between a sum and its rounding. The variance holds for sparse activations too (3 % non-zero,
noise-free: 1.01-1.04x the bit-level path's; 0.69x while exact ties rounded half to even). One normal draw per
output instead of 2·T·D makes it a few times faster than the bit-level path; `tests/test_stat.py` compares the
two error variances.

Rounding is a deterministic function of the column sums; where it carries most of the error, independent draws
misrepresent it (on MiniLM, a worst-case ADC range with 5 % RTN scored -1.12 this way against the bit level's 85.15,
at per-product error variances within 2x). So a product whose ADC share of the modelled variance exceeds
`cfg.stat_max_adc_share` runs at the bit level instead: without noise, every product whose ADC rounds.

In a model (`modules.Products`), one-column products (the norm statistics and softmax row sums) stay on the
bit-level path: a token's statistic can exceed the range calibrated on other tokens and clip, which this model
misses (on MiniLM, noise-free, the error of E(u²) came out at 0.70x the bit-level path's in mean square;
`benchmarks/stat_fidelity.py`), and there the bit level (`onecolumn`) costs about as much as this model: at one thread
(`bench_kernel.py`, stop 31) a norm statistic of 2048 tokens took 6.0-8.9 ms against 8.9-13.8 ms here, a softmax
row sum 8.4-11.5 against 8.0-11.1 ms.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from numba import njit, prange

from xbarllm.mapping.encoding import base
from xbarllm.sim.config import SimConfig
from xbarllm.sim.crossbar import tiles_and_steps, xbar_matmul
from xbarllm.sim.encoding import cell_energy, encode
from xbarllm.sim.kernel import use_torch_threads
from xbarllm.sim.rng import _GAMMA, _from_bits, _mix, _normal_pair


@lru_cache(maxsize=16)
def digit_tables(s: int, digits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For every integer x that `digits` balanced digits hold, |x| <= (B^digits - 1)/2: its RTN weight
    Σ_p B^2p χ²(d_p) (float32, (values,)), and which of its digits are non-zero, four digits per int64 word in
    16-bit fields (digit p: word p // 4, field p % 4; (words, values)), so that summing words counts non-zero
    digits per position. Cached: callers must not modify them."""
    half = (base(s) ** digits - 1) // 2
    d = encode(torch.arange(-half, half + 1, dtype=torch.float32), s, digits)  # (digits, values)
    chi = torch.from_numpy(cell_energy(s))[d.abs().long()]
    scale = torch.tensor([float(base(s)) ** (2 * p) for p in range(digits)])
    words = torch.zeros(-(-digits // 4), d.shape[1], dtype=torch.int64)
    for p in range(digits):
        words[p // 4] += (d[p] != 0).long() << 16 * (p % 4)
    return (scale[:, None] * chi).sum(0).float(), words


@njit(parallel=True, cache=True)
def _planes(x, half, energy16, words, unit, kt, w2, e16, adc, rtn):
    """One pass over the activations: e16 = bfloat16 bits of each element's RTN weight; adc[g, m] = the ADC
    rounding variance of row m, Σ over tiles t and digits p of 2·(1 - 2^-c)·unit[t, p], c the slice's non-zero
    digits (counted by summing `words`; a tile holds under 2^16 elements); and rtn[g, m] = Σ_k e_k·w2[g, k], the
    row's RTN variance summed over its outputs (w2: Σ_n w² per input row, float64) before the factor rtn_e²."""
    G, M, K = x.shape
    T, D = unit.shape
    for gm in prange(G * M):
        g, m = gm // M, gm % M
        total = var = 0.0
        for k in range(K):
            e = energy16[np.int64(x[g, m, k]) + half]
            e16[g, m, k] = e
            var += np.float64(_from_bits(np.int32(e) << 16)) * w2[g, k]
        rtn[g, m] = var
        for t in range(T):
            for j in range(words.shape[0]):
                c = np.int64(0)
                for k in range(t * kt, min(K, (t + 1) * kt)):
                    c += words[j, np.int64(x[g, m, k]) + half]
                for p in range(4 * j, min(D, 4 * j + 4)):
                    total += 2.0 * (1.0 - 0.5 ** (c >> 16 * (p % 4) & 0xFFFF)) * unit[t, p]
        adc[g, m] = total


@njit(parallel=True, cache=True)
def _add_gaussian(exact, var16, adc, rtn2, key, out):
    """out[g, m, n] = exact + √(rtn2·var + adc[g, m])·ε: var from its bfloat16 bits, ε normal pair draws of stream
    (g, m) of `key`."""
    G, M, N = out.shape
    h = N // 2
    for gm in prange(G * M):
        g, m = gm // M, gm % M
        state = _mix(key ^ np.uint64(gm) * _GAMMA)
        a = adc[g, m]
        for n in range(h):
            e1, e2 = _normal_pair(state, n)
            v1, v2 = _from_bits(np.int32(var16[g, m, n]) << 16), _from_bits(np.int32(var16[g, m, n + h]) << 16)
            out[g, m, n] = exact[g, m, n] + np.sqrt(rtn2 * v1 + a) * e1
            out[g, m, n + h] = exact[g, m, n + h] + np.sqrt(rtn2 * v2 + a) * e2
        if N % 2:
            e1, _ = _normal_pair(state, h)
            v1 = _from_bits(np.int32(var16[g, m, N - 1]) << 16)
            out[g, m, N - 1] = exact[g, m, N - 1] + np.sqrt(rtn2 * v1 + a) * e1


def _exact(x: torch.Tensor, w: torch.Tensor, xm: float, wm: float) -> torch.Tensor:
    """The integer product of integer-valued float tensors with max |x| = xm and max |w| = wm, exactly: int8 GEMMs
    when w fits in int8 (one for |x| <= 127, two for |x| <= 8191 as x = 128·hi + lo), float32 while every sum stays
    below 2^24, else float64."""
    if x.shape[0] == 1 and xm <= 8191 and wm <= 127:
        w8 = w[0].to(torch.int8)
        if xm <= 127:
            return torch._int_mm(x[0].to(torch.int8), w8).unsqueeze(0)
        hi = torch.round(x[0] / 128)
        lo = torch._int_mm((x[0] - 128 * hi).to(torch.int8), w8)
        return (128 * torch._int_mm(hi.to(torch.int8), w8).double() + lo).unsqueeze(0)
    return x @ w if x.shape[-1] * xm * wm < 2**24 else x.double() @ w.double()


def stat_matmul(x: torch.Tensor, w: torch.Tensor, cfg: SimConfig, gen: torch.Generator | None = None,
                x_max: int | None = None, fullscale: list | None = None,
                stats: dict[str, int] | None = None) -> torch.Tensor:
    """(G, M, K) @ (G, K, N) for integer-valued float tensors: the exact product plus a Gaussian with the
    bit-level path's error variance (module docstring; RTN variances to bfloat16 precision, 2^-8 relative);
    float32, in unit products. Arguments as `xbar_matmul`; `stats` also gets "over_range_unknown"."""
    G, M, K = x.shape
    N = w.shape[-1]
    x_max = x_max if x_max is not None else 2 ** (cfg.act_bits - 1) - 1
    kt, D, lsb, w_max, x_top = tiles_and_steps(x, w, cfg, x_max, fullscale)
    r, columns = cfg.copies, G * M * lsb.shape[0] * D * N  # '+'/'-' column pairs converted
    if (cfg.rtn == 0 and cfg.adc_bits is None) or not x.numel() or not N:
        return _counted(_exact(x, w, x_top, w_max / r).float(), stats, columns)
    energy, words = digit_tables(cfg.encoding_s, D)  # tiles_and_steps checked that D digits hold every x
    step = (lsb.double() / r) ** 2 if cfg.adc_bits is not None else torch.zeros_like(lsb, dtype=torch.float64)
    # output units: the kernel's unit is the copies' summed weight, so steps are divided by r
    # without noise, sums are integers: on a step of L units the rounding error's variance is (L² - 1)/12 for
    # odd L, and (L² + 2)/12 for even L, where a sum halfway between two codes is off by L/2 either way
    exact = torch.where(lsb.double() % 2 == 0, 2.0, -1.0) / r**2
    unit = (step if cfg.rtn else step + exact).clamp(min=0) / 12 * base(cfg.encoding_s) ** (2 * torch.arange(D))
    e16, adc = torch.empty((G, M, K), dtype=torch.bfloat16), torch.empty(G, M)
    rtn = torch.empty(G, M, dtype=torch.float64)
    use_torch_threads()
    energy16 = energy.to(torch.bfloat16).view(torch.int16).numpy()
    w_sq = w * w if cfg.rtn else None
    # Σ_n w² summed in float32 (0.03 ms against 0.29 ms in float64 for 384×1536): it only weighs the hand-over
    w2 = w_sq.sum(-1).double() if cfg.rtn else torch.zeros(G, K, dtype=torch.float64)
    _planes(x.contiguous().numpy(), (len(energy) - 1) // 2, energy16, words.numpy(), unit.numpy(), kt, w2.numpy(),
            e16.view(torch.int16).numpy(), adc.numpy(), rtn.numpy())
    rounding = float(adc.sum(dtype=torch.float64)) * N  # without noise all of the error, where there is any
    if rounding > cfg.stat_max_adc_share * (cfg.rtn_element**2 * float(rtn.sum()) + rounding):
        return xbar_matmul(x, w, cfg, gen, x_max, fullscale, stats=stats).float()
    var = e16 @ w_sq.to(torch.bfloat16) if cfg.rtn else torch.zeros((G, M, N), dtype=torch.bfloat16)
    exact = _exact(x, w, x_top, w_max / r)
    key = int(torch.randint(0, 2**62, (), generator=gen))
    out = torch.empty(G, M, N)
    _add_gaussian(exact.contiguous().numpy(), var.view(torch.int16).numpy(), adc.numpy(),
                  np.float32(cfg.rtn_element**2), np.uint64(key), out.numpy())
    return _counted(out, stats, columns)


def _counted(out: torch.Tensor, stats: dict[str, int] | None, columns: int) -> torch.Tensor:
    """`out`, with its 2·`columns` conversions added to `stats`, whose over-range count this model cannot know."""
    if stats is not None:
        stats["conversions"] = stats.get("conversions", 0) + 2 * columns
        stats["over_range_unknown"] = 1
    return out
