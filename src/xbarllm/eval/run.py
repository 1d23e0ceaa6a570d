"""One accuracy measurement per (task, simulation config), and grids of them for sweeps."""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from pydantic import ValidationError

from xbarllm.errors import XbarError, from_validation
from xbarllm.sim import SimConfig
from xbarllm.sim.modules import install
from xbarllm.sim.tune import tuned

log = logging.getLogger(__name__)

TASKS = {"stsb": ("all-minilm-l6-v2", "spearman_x100"), "sst2": ("all-minilm-l6-v2", "accuracy_pct"),
         "wikitext2": ("smollm2-135m", "perplexity")}
# The smallest --limit each task can score: a Spearman needs two pairs, a perplexity one predicted token.
MIN_LIMIT = {"stsb": ("pairs", 2), "sst2": ("sentences", 1), "wikitext2": ("tokens", 2)}
# Sweep axis -> SimConfig fields it sets: every field by its name, "S" for encoding_s, and "noise" for one
# relative amplitude of the resistor RTN and the dense-cell read noise alike.
AXES = {"noise": ("rtn", "dense_noise"), "S": ("encoding_s",), **{f: (f,) for f in SimConfig.model_fields}}


def check(task: str, cfg: SimConfig, limit: int | None = None) -> None:
    """Raise XbarError if `cfg` cannot run on `task` with `limit` (checked for every sweep point before any runs)."""
    if task not in TASKS:
        raise XbarError(f"--task: unknown task '{task}' (tasks: {', '.join(TASKS)})")
    unit, least = MIN_LIMIT[task]
    if limit is not None and limit < least:
        raise XbarError(f"--limit: {task} needs at least {least} {unit}, got {limit}")
    if cfg.tune_steps and task != "wikitext2":
        raise XbarError(f"tune_steps: noise-aware tuning needs a causal LM task (wikitext2), not {task}")


def measure(task: str, cfg: SimConfig, limit: int | None = None,
            progress: Callable[[int, int], None] | None = None) -> dict[str, float | int | str]:
    """Run `task` with products through `cfg`; returns the metric, seconds, the softmax overflow count and the
    fraction of ADC conversions whose sum was over range (clipped or converted again; NaN if any product ran in
    distribution, xbar_stat).
    `progress(done, total)` follows the evaluation pass (batches or 1024-token windows)."""
    from xbarllm.eval import tasks

    check(task, cfg, limit)
    chips = []

    def prepare(model, calibrate: Callable[[], None], tune_ids: Callable[[], torch.Tensor] | None = None) -> None:
        if cfg.tune_steps:  # check() admitted it: a causal LM task, which passes tune_ids
            tuned(model, TASKS[task][0], tune_ids(), cfg.per_element(cfg.tune_rtn), cfg.tune_steps, runs=cfg.runs)
        chip = install(model, cfg)
        chip.calibrate(calibrate)
        chips.append(chip)

    if task == "sst2":
        tasks.fp32_probe()  # shared by every configuration, so not in any one's seconds
    t0 = time.perf_counter()
    extra: dict[str, float] = {}
    if task == "stsb":
        value = tasks.run_stsb(prepare, limit, progress=progress)
    elif task == "sst2":
        value, extra["fp32_probe_accuracy_pct"] = tasks.run_sst2(prepare, limit, progress=progress)
    else:
        value = tasks.run_wikitext2(prepare, tokens=8192 if limit is None else limit, progress=progress)
    chip = chips[-1]
    log.info("%s %s -> %.4f", task, cfg.mode, value)
    over = chip.adc.get("over_range", 0) / max(1, chip.adc.get("conversions", 0))
    over = float("nan") if chip.adc.get("over_range_unknown") else over  # xbar_stat: not modelled
    return {"task": task, "metric": TASKS[task][1], "value": value, "seconds": time.perf_counter() - t0,
            "exp_overflow_calls": chip.exp_overflows, "exp_calls": chip.exp_calls,
            "adc_over_range": over, **extra}


def measure_on(client, task: str, cfgs: list[SimConfig], limit: int | None = None
               ) -> Iterator[tuple[int, dict[str, float | int | str]]]:
    """(index, `measure` result) for each config, in the order they finish, run on a Dask client's workers."""
    from dask.distributed import as_completed

    futures = {client.submit(measure, task, cfg, limit, pure=False): i for i, cfg in enumerate(cfgs)}
    for fut in as_completed(futures):
        yield futures[fut], fut.result()


def parse_sweep(items: list[str], extra: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """'noise=0,0.01' items -> {axis: [values]} over AXES and the caller's `extra` axes; unknown axes and empty
    lists are errors."""
    axes: dict[str, list[str]] = {}
    known = [*extra, *AXES]
    for item in items:
        name, eq, values = item.partition("=")
        if not eq or name not in known:
            raise XbarError(f"--sweep: '{item}': expected AXIS=v1,v2 with AXIS one of {', '.join(known)}")
        vals = [v for v in values.split(",") if v]
        if not vals:
            raise XbarError(f"--sweep: '{item}' lists no values")
        axes[name] = vals
    return axes


def grid(base: SimConfig, axes: dict[str, list[str]]) -> Iterator[tuple[dict[str, Any], SimConfig]]:
    """Every combination of the sweep axes applied to `base`, validated: ({axis: value as the config holds it,
    typed (e.g. noise 0.0001 as a float), so that result tables sort and filter by number}, config)."""
    names = list(axes)
    for combo in itertools.product(*(axes[n] for n in names)):
        update = {field: value for n, value in zip(names, combo, strict=True) for field in AXES[n]}
        try:
            cfg = SimConfig.model_validate({**base.model_dump(), **update})
        except ValidationError as e:
            raise from_validation("--sweep", e) from None
        yield {n: getattr(cfg, AXES[n][0]) for n in names}, cfg
