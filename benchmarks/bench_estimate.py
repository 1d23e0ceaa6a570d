"""Time to build, map and cost BERT-Large and GPT-3 after import (issue 6 targets: < 50 ms, < 1 s).

The reference in the same run is build + map alone, so the ratio shows what the cost model adds.
"""

from __future__ import annotations

import sys

from timing import best_of

from xbarllm import cost, mapping
from xbarllm.spec import load_hardware, load_model
from xbarllm.workload import build

CASES = [("bert-large", 256, 0.050), ("gpt3-175b", 2048, 1.0)]


def main() -> int:
    hw = load_hardware()
    cost.estimate(mapping.map(build(load_model("gpt2"), seq_len=8), hw), hw)  # warm imports
    failed = False
    print(f"{'model':<12} {'seq':>5} {'estimate':>10} {'target':>8} {'ours/target':>12} {'map only':>9} {'ratio':>6}")
    for name, seq_len, target in CASES:
        spec = load_model(name)
        t_est, _ = best_of(lambda s=spec, n=seq_len: cost.estimate(mapping.map(build(s, seq_len=n), hw), hw))
        t_map, _ = best_of(lambda s=spec, n=seq_len: mapping.map(build(s, seq_len=n), hw))
        failed |= t_est > target
        print(f"{name:<12} {seq_len:>5} {t_est * 1e3:>7.1f} ms {target * 1e3:>5.0f} ms {t_est / target:>12.2f} "
              f"{t_map * 1e3:>6.1f} ms {t_est / t_map:>6.2f}")
    print("target met" if not failed else "TARGET MISSED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
