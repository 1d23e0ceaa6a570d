"""Time to build and map BERT-Large and GPT-3 (after import), against tracing the HF model.

Targets (issue 3): BERT-Large < 50 ms, GPT-3 < 1 s. The reference is the obvious alternative for
counting MACs: a forward pass of the transformers model on meta tensors under torch's
FlopCounterMode (no weights, shapes only). Both are timed in this run; the ratio is what matters
on a noisy machine.
"""

from __future__ import annotations

import sys

import torch
from timing import best_of
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModelForCausalLM, BertModel

from xbarllm import mapping
from xbarllm.spec import load_hardware, load_model
from xbarllm.spec.model import _preset_dict
from xbarllm.workload import build

CASES = [("bert-large", 256, 0.050), ("gpt3-175b", 2048, 1.0)]


def trace(name: str, seq_len: int) -> None:
    cfg = AutoConfig.for_model(**_preset_dict(name))
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        model = BertModel(cfg, add_pooling_layer=False) if cfg.model_type == "bert" \
            else AutoModelForCausalLM.from_config(cfg)
        with FlopCounterMode(display=False), torch.no_grad():
            model(input_ids=torch.zeros(1, seq_len, dtype=torch.long))


def main() -> int:
    hw = load_hardware()
    for name in dict.fromkeys(n for n, _, _ in CASES):
        mapping.map(build(load_model(name), seq_len=8), hw)  # warm imports and caches
    failed = False
    print(f"{'model':<12} {'seq':>5} {'ours best/median':>20} {'target':>8} {'ours/target':>12} "
          f"{'trace (s)':>10} {'trace/ours':>11}")
    for name, seq_len, target in CASES:
        spec = load_model(name)
        best, med = best_of(lambda s=spec, n=seq_len: mapping.map(build(s, seq_len=n), hw), 7)
        tr, _ = best_of(lambda m=name, n=seq_len: trace(m, n), 1)
        failed |= best > target
        print(f"{name:<12} {seq_len:>5} {best * 1e3:>9.1f}/{med * 1e3:>6.1f} ms {target * 1e3:>5.0f} ms "
              f"{best / target:>12.2f} {tr:>10.2f} {tr / best:>10.0f}x")
    print("target met" if not failed else "TARGET MISSED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
