"""Per product shape: the crossbar kernel (`xbar_matmul`, S = 2, worst-case ADC) against fp32 torch matmul.

MiniLM's shapes at 256 tokens per batch (2560 for the attention projections of ten sentences): the two FFN
Linears, a projection, a norm statistic (one-column product per token), a softmax row sum and the two
attention products. Gaussian activations (σ 30) and random 8-bit weights. Prints best-of-7 times and the
ratio to fp32, measured in this run, without and with 5 % RTN. `--threads N` (default 1).
"""

from __future__ import annotations

import argparse
import sys

import torch
from timing import best_of

from xbarllm.sim import SimConfig, xbar_matmul

SHAPES = [("Linear", 1, 256, 384, 1536), ("Linear", 1, 256, 1536, 384), ("Linear", 1, 2560, 384, 384),
          ("norm", 2048, 1, 384, 1), ("row sum", 768, 40, 40, 1), ("Q·Kᵀ", 768, 40, 32, 40),
          ("scores·V", 768, 40, 40, 32)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(ap.parse_args().threads)
    g = torch.Generator().manual_seed(0)
    print(f"threads {torch.get_num_threads()}; best of 7 (ms)")
    print(f"{'product':9s} {'groups × M×K×N':>20s} {'fp32':>7s} {'no noise':>9s} {'ratio':>6s} {'5 % RTN':>8s} "
          f"{'ratio':>6s}")
    for name, G, M, K, N in SHAPES:
        x = (torch.randn(G, M, K, generator=g) * 30).round().clamp(-127, 127)
        w = torch.randint(-127, 128, (G, K, N), generator=g).float()
        fp32, _ = best_of(lambda x=x, w=w: x @ w)
        row = []
        for rtn in (0.0, 0.05):
            cfg = SimConfig(rtn=rtn, adc_policy="worst_case")
            run = lambda x=x, w=w, cfg=cfg: xbar_matmul(x, w, cfg, torch.Generator().manual_seed(1))  # noqa: E731
            run()  # compile or load the kernels
            t, _ = best_of(run)
            row += [t * 1e3, t / fp32]
        print(f"{name:9s} {f'{G} × {M}×{K}×{N}':>20s} {fp32 * 1e3:7.2f} {row[0]:9.2f} {row[1]:5.1f}x {row[2]:8.2f} "
              f"{row[3]:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
