"""`xbarllm simulate MODEL --task …`: accuracy of a real model through the simulated crossbar
(thin layer over xbarllm.eval)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from xbarllm.errors import XbarError

if TYPE_CHECKING:
    from xbarllm.sim import SimConfig


def simulate_cmd(
    model: Annotated[str, typer.Argument(help="all-minilm-l6-v2 (stsb, sst2) or smollm2-135m (wikitext2)")],
    task: Annotated[str, typer.Option("--task", help="stsb, sst2 or wikitext2")] = "stsb",
    config: Annotated[str, typer.Option("--config", help="chip numerics: a preset (paper, act11-reconvert, "
                                        "tile-q999, smollm2-rtn-target; `xbarllm presets`) or a YAML file of "
                                        "SimConfig fields; the flags below override it")] = "paper",
    s: Annotated[int | None, typer.Option("--S", help="encoding S: balanced base 2^(S+1)-1 [paper: 2]")] = None,
    noise: Annotated[float | None, typer.Option("--noise", help="RTN amplitude as a fraction of the signal "
                                                "[paper: 0.05]")] = None,
    adc_bits: Annotated[int | None, typer.Option("--adc-bits", help="shared ADC resolution [paper: 8]")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="crossbar rows: xbar (bit level; paper) or xbar_stat "
                                             "(the same error in distribution, 3-5x faster with noise; products "
                                             "whose error is mostly ADC rounding, all that round without noise, "
                                             "stay bit level)")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="seed of every random draw [paper: 0]")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="first N pairs/sentences, or N tokens")] = None,
    sweep: Annotated[list[str] | None, typer.Option("--sweep", help="AXIS=v1,v2 (repeatable): noise, "
                                                    "bits_per_cell, stuck_rate, S, adc_bits, seed, config (presets "
                                                    "or files), ...")] = None,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="write the result table to .csv or .parquet (after each configuration)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as JSON")] = False,
    workers: Annotated[int, typer.Option("--workers", help="configurations measured side by side, each in a "
                                         "one-thread worker process (Dask LocalCluster); 1: in this process")] = 1,
) -> None:
    """Accuracy of a real model with every product through the simulated crossbar.

    Without --sweep: fp32, digital integers at the chip's activation bits (INT8 on the paper's chip), crossbar
    without noise and crossbar with the config's noise.
    """
    import pandas as pd
    from rich.progress import Progress

    from xbarllm.cli import _check_out, _jsonable, _table, err, out, write_table_atomic
    from xbarllm.eval.data import data_dir
    from xbarllm.eval.run import TASKS, check, grid, parse_sweep
    from xbarllm.sim.modules import CROSSBAR_MODES

    _check_out(out_file)
    if task not in TASKS:
        raise XbarError(f"--task: unknown task '{task}' (tasks: {', '.join(TASKS)})")
    if model != TASKS[task][0]:
        raise XbarError(f"model: task {task} runs on {TASKS[task][0]}, not '{model}'")
    if noise is not None and noise < 0:
        raise XbarError(f"--noise: must be >= 0, got {noise}")
    if mode is not None and mode not in CROSSBAR_MODES:
        raise XbarError(f"--mode: must be {' or '.join(CROSSBAR_MODES)}, got '{mode}'")
    if workers < 1:
        raise XbarError(f"--workers: must be >= 1, got {workers}")
    needed = {"stsb": "stsb/sts-test.csv", "sst2": "sst2/dev.tsv", "wikitext2": "wikitext2/wiki.test.raw"}[task]
    if not (data_dir() / needed).is_file():
        raise XbarError(f"{data_dir() / needed}: data file not found (set XBARLLM_DATA)")
    flags = {"mode": mode, "encoding_s": s, "rtn": noise, "adc_bits": adc_bits, "seed": seed}
    axes = parse_sweep(sweep or [], extra=("config",))
    swept = axes.pop("config", None)  # whole presets or files, each with the flags over it
    names = swept or [config]
    bases = [(name, _chip(name, flags)) for name in names]
    if sweep:
        points = [(({"config": name} if swept else {}) | point, cfg) for name, base in bases
                  for point, cfg in grid(base, axes)]
    else:
        # the references run untuned; the digital row quantises activations as the chip does
        base = bases[0][1]
        points = [({"mode": "fp32", "noise": "-"}, base.model_copy(update={"mode": "fp32", "tune_steps": 0})),
                  ({"mode": f"int{base.act_bits}", "noise": "-"},
                   base.model_copy(update={"mode": "int8", "tune_steps": 0})),
                  ({"mode": base.mode, "noise": "0"}, base.model_copy(update={"rtn": 0.0})),
                  ({"mode": base.mode, "noise": str(base.rtn)}, base)]
    for _, cfg in points:
        check(task, cfg, limit)
    found: list[dict[str, Any] | None] = [None] * len(points)
    with Progress(console=err, transient=True) as bar:
        job = bar.add_task(f"{task}: configurations", total=len(points))
        for i, row in _measured(task, [cfg for _, cfg in points], limit, workers, bar):
            found[i] = {**points[i][0], **row}
            if out_file is not None:  # rewritten after each configuration, so a long sweep keeps what it measured
                write_table_atomic(pd.DataFrame([r for r in found if r is not None]), out_file)
            bar.advance(job)
    rows = [r for r in found if r is not None]
    if as_json:
        print(json.dumps(rows, default=_jsonable))
        return
    title = f"{model} on {task} (limit={limit}, config {', '.join(names)}): {TASKS[task][1]}"
    out.print(_table(title, [_shown(r) for r in rows]))


def _chip(config: str, flags: dict[str, Any]) -> SimConfig:
    """The SimConfig of preset or file `config` with the flags that were given (not None) over it."""
    from pydantic import ValidationError

    from xbarllm.errors import from_validation
    from xbarllm.sim import SimConfig
    from xbarllm.sim.config import load_sim_config
    from xbarllm.sim.modules import CROSSBAR_MODES

    try:
        chip = SimConfig.model_validate({**load_sim_config(config).model_dump(),
                                         **{k: v for k, v in flags.items() if v is not None}})
    except ValidationError as e:
        renames = {"encoding_s": "--S", "rtn": "--noise", "adc_bits": "--adc-bits"}
        raise from_validation("simulate", e, renames) from None
    if chip.mode not in CROSSBAR_MODES:
        raise XbarError(f"--config: {config} sets mode {chip.mode}; the crossbar rows need "
                        f"{' or '.join(CROSSBAR_MODES)} (or pass --mode)")
    return chip


def _measured(task: str, cfgs: list, limit: int | None, workers: int, bar) -> Iterator[tuple[int, dict[str, Any]]]:
    """(index, result) per config: in this process, with a bar for each evaluation pass, or on `workers`
    one-thread worker processes as they finish."""
    from xbarllm.eval.run import measure, measure_on

    if workers == 1:
        inner = bar.add_task("evaluation pass", total=None)
        step = lambda done, total: bar.update(inner, completed=done, total=total)  # noqa: E731
        for i, cfg in enumerate(cfgs):
            bar.reset(inner, total=None)
            yield i, measure(task, cfg, limit, step)
        return
    from xbarllm.explore.run import connect, disconnect  # Dask, only when asked for

    client = connect(None, workers)
    try:
        yield from measure_on(client, task, cfgs, limit)
    finally:
        disconnect(client)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A `simulate` result row as displayed: task and metric go to the title, counters are merged."""
    hidden = {"task", "metric", "exp_overflow_calls", "exp_calls", "adc_over_range"}
    shown = {k: v for k, v in row.items() if k not in hidden}
    shown["EXP overflows"] = f"{row['exp_overflow_calls']}/{row['exp_calls']}"
    shown["ADC over range"] = f"{row['adc_over_range']:.1e}"
    return shown
