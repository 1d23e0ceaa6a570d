"""Per product shape: the crossbar kernel (`xbar_matmul`, S = 2, worst-case ADC) against fp32 torch matmul.

MiniLM's shapes at 256 tokens per batch (2560 for the attention projections of ten sentences): the two FFN
Linears, a projection, a norm statistic (one-column product per token), a softmax row sum and the two
attention products. Gaussian activations (σ 30) and random 8-bit weights. Prints best-of-7 times and the
ratio to fp32, measured in this run, without and with 5 % RTN, and with 5 % RTN in distribution (`stat_matmul`,
mode xbar_stat, with `stat_max_adc_share` 1: with the worst-case range the ADC's rounding carries most of the error,
and a model run would hand these products to the bit level). `--threads N` (default 1).

Then, per Linear, a floor for the noisy product: the int8 GEMMs the int8 path runs (per tile of kt = 64
elements: |d|·|w| and d·w, N columns each; the variances' 7-bit halves, 2N columns each) on operands of the
same shapes, and the Box-Muller draws it needs (one normal pair per column, tile, digit and row), each timed
alone and as a ratio to fp32; torch.randn of as many values is printed for scale.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from numba import njit, prange
from timing import best_of

from xbarllm.sim import SimConfig, xbar_matmul
from xbarllm.sim.column import _add_noise_row
from xbarllm.sim.rng import _GAMMA, _mix
from xbarllm.sim.stat import stat_matmul

SHAPES = [("Linear", 1, 256, 384, 1536), ("Linear", 1, 256, 1536, 384), ("Linear", 1, 2560, 384, 384),
          ("norm", 2048, 1, 384, 1), ("row sum", 768, 40, 40, 1), ("Q·Kᵀ", 768, 40, 32, 40),
          ("scores·V", 768, 40, 40, 32)]
KT, DIGITS = 64, 3  # elements per 128-row tile and digits per INT8 activation at S = 2


@njit(parallel=True)  # not cached: numba would not see a change to the kernel functions it inlines
def _draws_only(zp, zm, v):
    """The kernel's noise on every row of zp and zm (streams × N), all variances v (N,): one pair per column."""
    for s in prange(zp.shape[0]):
        _add_noise_row(_mix(np.uint64(7) ^ np.uint64(s) * _GAMMA), np.float32(0.05), zp[s], zm[s], v, v)


def floor(M: int, K: int, N: int, fp32: float) -> str:
    """The noisy int8 path's GEMMs and draws for an M×K×N Linear, each timed alone (ms, ratio to fp32)."""
    g = torch.Generator().manual_seed(2)
    T = -(-K // KT)
    a = torch.randint(-3, 4, (DIGITS * M, KT), generator=g, dtype=torch.int8)
    w1, w2 = (torch.randint(-127, 128, (KT, n), generator=g, dtype=torch.int8) for n in (N, 2 * N))
    o1, o2 = torch.empty((DIGITS * M, N), dtype=torch.int32), torch.empty((DIGITS * M, 2 * N), dtype=torch.int32)

    def gemms():
        for _ in range(T):
            for w, o in ((w1, o1), (w1, o1), (w2, o2), (w2, o2)):
                torch._int_mm(a, w, out=o)

    zp, zm = np.zeros((2, T * DIGITS * M, N), dtype=np.float32)
    v = np.ones(N, dtype=np.float32)
    randn = torch.empty(2 * zp.size)
    _draws_only(zp[:1], zm[:1], v)  # compile or load
    t_gemm, _ = best_of(gemms)
    t_draw, _ = best_of(lambda: _draws_only(zp, zm, v))
    t_randn, _ = best_of(lambda: torch.randn(randn.shape, out=randn))
    return (f"  floor, 5 % RTN: int8 GEMMs {t_gemm * 1e3:.2f} ms ({t_gemm / fp32:.1f}x) + draws {t_draw * 1e3:.2f} ms "
            f"({t_draw / fp32:.1f}x; torch.randn of as many: {t_randn * 1e3:.2f} ms) = "
            f"{(t_gemm + t_draw) / fp32:.1f}x fp32")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(ap.parse_args().threads)
    g = torch.Generator().manual_seed(0)
    print(f"threads {torch.get_num_threads()}; best of 7 (ms)")
    print(f"{'product':9s} {'groups × M×K×N':>20s} {'fp32':>7s} {'no noise':>9s} {'ratio':>6s} {'5 % RTN':>8s} "
          f"{'ratio':>6s} {'stat 5 %':>9s} {'ratio':>6s}")
    for name, G, M, K, N in SHAPES:
        x = (torch.randn(G, M, K, generator=g) * 30).round().clamp(-127, 127)
        w = torch.randint(-127, 128, (G, K, N), generator=g).float()
        fp32, _ = best_of(lambda x=x, w=w: x @ w)
        row = []
        for product, rtn in ((xbar_matmul, 0.0), (xbar_matmul, 0.05), (stat_matmul, 0.05)):
            cfg = SimConfig(rtn=rtn, adc_policy="worst_case", stat_max_adc_share=1.0)
            run = lambda x=x, w=w, cfg=cfg, f=product: f(x, w, cfg, torch.Generator().manual_seed(1))  # noqa: E731
            run()  # compile or load the kernels
            t, _ = best_of(run)
            row += [t * 1e3, t / fp32]
        print(f"{name:9s} {f'{G} × {M}×{K}×{N}':>20s} {fp32 * 1e3:7.2f} {row[0]:9.2f} {row[1]:5.1f}x {row[2]:8.2f} "
              f"{row[3]:5.1f}x {row[4]:9.2f} {row[5]:5.1f}x")
        if name == "Linear":
            print(floor(M, K, N, fp32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
