"""Noise-aware self-distillation: make a causal LM tolerate the crossbar's RTN before it runs on the chip.

The model is trained so that, with the analog RTN error (`rtn_error`, fresh draws every step) on every
Linear that runs on the chip, its next-token distribution matches that of its own untouched fp32 copy on
calibration text: loss KL(teacher ‖ noisy student) per token. This is hardware-aware training (Joshi et
al., Nat. Commun. 11, 2473, 2020; aihwkit's HWA training) with the model as its own teacher, so it needs no
labels and no text from the evaluation corpus. Tuned weights are cached under $XBARLLM_CACHE (default
~/.cache/xbarllm).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from xbarllm.errors import XbarError
from xbarllm.paths import cache_root
from xbarllm.sim.modules import output_projection, rtn_error

log = logging.getLogger(__name__)


Runs = Callable[[str], bool]  # whether a stage runs on the chip (SimConfig.runs)
LINEAR_STAGES = ("linear", "head")


def _everywhere(stage: str) -> bool:
    return True


@contextmanager
def rtn_on_linears(model: nn.Module, rtn: float, gen: torch.Generator, runs: Runs = _everywhere) -> Iterator[None]:
    """Within the block, every nn.Linear of `model` whose stage runs on the chip (`runs("head")` for the output
    projection, `runs("linear")` for the others) adds the analog RTN error (`rtn_error`) to its output."""
    head = output_projection(model)
    handles = [m.register_forward_hook(lambda mod, inp, out: out + rtn_error(inp[0], mod.weight.t(), rtn, gen))
               for m in model.modules() if isinstance(m, nn.Linear) and runs("head" if m is head else "linear")]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def noise_aware_tune(model: nn.Module, ids: torch.Tensor, rtn: float, steps: int, lr: float = 5e-5,
                     seq: int = 256, seed: int = 0, runs: Runs = _everywhere) -> list[float]:
    """Train the causal LM `model` in place for `steps` windows of `seq` tokens of `ids` (1-D) with RTN of
    relative amplitude `rtn` on the Linears that run on the chip (see `rtn_on_linears`); returns the
    distillation loss per step (KL, nats/token)."""
    teacher = copy.deepcopy(model).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    try:
        with rtn_on_linears(model, rtn, gen, runs):
            for step in range(steps):
                start = (step * seq) % max(1, len(ids) - seq)
                x = ids[start:start + seq].unsqueeze(0)
                with torch.no_grad():
                    target = teacher(x).logits.float().log_softmax(-1)
                out = model(x).logits.float().log_softmax(-1)
                loss = nn.functional.kl_div(out, target, log_target=True, reduction="sum") / x.shape[1]
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                losses.append(float(loss.detach()))
                if step % 10 == 0:
                    log.info("noise-aware tuning step %d/%d: KL %.4f nats/token", step, steps, losses[-1])
    finally:
        model.eval()
    return losses


def tuned(model: nn.Module, name: str, ids: torch.Tensor, rtn: float, steps: int, seed: int = 0,
          runs: Runs = _everywhere) -> Path:
    """Put `model` (named `name`) into its noise-aware tuned state: from the cache if this exact tuning
    (model, text, rtn, steps, seed, noisy Linear stages) ran before, else by `noise_aware_tune`, then cached.
    Returns the file."""
    noisy = [s for s in LINEAR_STAGES if runs(s)]
    tag = f"{name}|{rtn}|{steps}|{seed}|" + ("" if len(noisy) == len(LINEAR_STAGES) else "+".join(noisy) + "|")
    key = hashlib.sha256(tag.encode() + ids.numpy().tobytes()).hexdigest()[:16]
    path = cache_root() / "tuned" / f"{key}.pt"
    if path.exists():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
        except Exception as e:  # a truncated or foreign file
            raise XbarError(f"{path}: unreadable tuned-weights cache ({type(e).__name__}); delete it") from None
        log.info("noise-aware tuned weights from %s", path)
        return path
    noise_aware_tune(model, ids, rtn, steps, seed=seed, runs=runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, path)
    return path
