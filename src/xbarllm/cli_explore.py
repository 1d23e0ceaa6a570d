"""`xbarllm explore SWEEP.yaml` (design-space exploration on Dask into a crash-safe result database)
and `xbarllm report` (the static HTML page of every reproduced figure)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from xbarllm.errors import XbarError


def explore_cmd(
    sweep_file: Annotated[Path, typer.Argument(help="sweep YAML: hardware, models, phases, seq_lens, axes")],
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="tcp://HOST:PORT of a Dask scheduler")] = None,
    workers: Annotated[int, typer.Option("--workers", help="LocalCluster worker processes")] = 2,
    db_path: Annotated[Path, typer.Option("--db", help="result database (.sqlite or .duckdb)")] = Path(
        "results.sqlite"),
    resume: Annotated[bool, typer.Option("--resume", help="keep the stored points, evaluate the rest")] = False,
    batch: Annotated[int, typer.Option("--batch", help="points per Dask task")] = 64,
    plot: Annotated[Path | None, typer.Option("--plot", help="Pareto plot PNG (default: next to the DB)")] = None,
) -> None:
    """Evaluate every point of a sweep on Dask; print and plot the Pareto front over area, energy, latency
    (and accuracy, when the sweep measures it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from xbarllm.cli import _table, err, out
    from xbarllm.explore.db import ResultDB
    from xbarllm.explore.pareto import front as pareto_front
    from xbarllm.explore.run import connect, disconnect, explore
    from xbarllm.explore.sweep import load_sweep, points
    from xbarllm.report import figures
    from xbarllm.report.html import save_png

    if workers < 1 or batch < 1:
        raise XbarError("--workers and --batch must be ≥ 1")
    if db_path.suffix not in (".sqlite", ".db", ".duckdb"):
        raise XbarError(f"--db {db_path}: use a .sqlite, .db or .duckdb file")
    pts = points(load_sweep(sweep_file))
    if db_path.exists() and not resume:
        raise XbarError(f"--db {db_path}: exists; pass --resume to add to it, or choose another file")
    client = connect(scheduler, workers)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = ResultDB(db_path)
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            stored = len({p.key for p in pts} & db.keys())
            job = bar.add_task("points", total=len({p.key for p in pts}), completed=stored)
            t0, n = time.perf_counter(), [0]

            def tick(k: int) -> None:
                n[0] += k
                bar.update(job, advance=k, description=f"points ({n[0] / (time.perf_counter() - t0):,.0f}/s)")
            explore(pts, db, client, batch=batch, progress=tick)
        df = db.frame()
    finally:
        db.close()
        disconnect(client)
    df = df[df.key.isin({p.key for p in pts})].reset_index(drop=True)
    front, objectives = pareto_front(df)
    plot_path = plot or db_path.with_suffix(".pareto.png")
    save_png(figures.pareto(df, front), plot_path)
    axes = [c for c in df.columns if "." in c]
    shown = df[front][["model", "phase", "seq_len", *axes, *objectives]].sort_values("latency_us")
    out.print(_table(f"Pareto front: {int(front.sum())} of {len(df)} points ({db_path}; plot {plot_path})",
                     shown.round(4).to_dict("records")))


def report_cmd(
    out_dir: Annotated[Path, typer.Option("--out", help="folder for index.html and its figures")] = Path("report"),
    db: Annotated[Path | None, typer.Option("--db", help="explore result database to plot")] = None,
    sim: Annotated[Path | None, typer.Option("--sim", help="`simulate --out` CSV of accuracy results")] = None,
    flash_dir: Annotated[Path | None, typer.Option("--flash", help="`flash bench --out` folder")] = None,
) -> None:
    """Write a static HTML report: Tables 7/10/11 and Figs. 13/14 paper vs ours, DSE, accuracy, flash."""
    from xbarllm.cli import out
    from xbarllm.report.html import write_report

    for flag, path in (("--db", db), ("--sim", sim)):
        if path is not None and not path.is_file():
            raise XbarError(f"{flag} {path}: no such file")
    if flash_dir is not None and not (flash_dir / "flash_latency.csv").is_file():
        raise XbarError(f"--flash {flash_dir}: no flash_latency.csv (write it with `xbarllm flash bench --out`)")
    page = write_report(out_dir, db=db, sim=sim, flash_dir=flash_dir)
    out.print(f"wrote {page}", highlight=False)
