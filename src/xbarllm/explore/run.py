"""Evaluate sweep points on Dask (a LocalCluster, or an existing scheduler), in batches, into the result DB."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from xbarllm.errors import XbarError
from xbarllm.explore.db import METRICS, ResultDB
from xbarllm.explore.sweep import Point

log = logging.getLogger(__name__)


@lru_cache(maxsize=64)
def _table(model: str, phase: str, seq_len: int):
    from xbarllm.spec.model import load_model
    from xbarllm.workload import build

    return build(load_model(model), seq_len=seq_len, phase=phase)


def evaluate(points: list[Point]) -> list[dict[str, Any]]:
    """Cost of each point: area (mm²), energy (mJ), latency (µs), ADP (mm²·s), pJ/MAC and chips.

    Points that share a workload and a base spec are evaluated together, vectorised over their axes."""
    from xbarllm import cost
    from xbarllm.spec.stacked import stack_updates

    groups: dict[tuple[str, str, int, int], list[int]] = {}
    for i, p in enumerate(points):
        groups.setdefault((p.model, p.phase, p.seq_len, id(p.base)), []).append(i)
    rows: list[dict[str, Any]] = [{} for _ in points]
    for (*work, _), idx in groups.items():
        hw = stack_updates(points[idx[0]].base, [points[i].axes for i in idx])
        metrics = cost.totals_many(_table(*work), hw)
        for j, i in enumerate(idx):
            p = points[i]
            axes = {**p.axes, **{f"sim.{k}": v for k, v in (p.sim_axes or {}).items()}}
            if p.accuracy is not None and p.accuracy.config is not None:
                axes["sim.config"] = p.accuracy.config
            rows[i] = {"key": p.key, "model": p.model, "phase": p.phase, "seq_len": p.seq_len, "axes": axes,
                       **{m: float(metrics[m][j]) for m in METRICS}, "accuracy": None, "accuracy_metric": None}
    return rows


def evaluate_accuracy(points: list[Point]) -> list[dict[str, Any]]:
    """`evaluate`, plus one accuracy measurement shared by the points (they must share a simulator config)."""
    from xbarllm.eval.run import measure

    cfg = points[0].sim_config()
    acc = points[0].accuracy
    m = measure(acc.task, cfg, acc.limit)
    return [{**row, "accuracy": float(m["value"]), "accuracy_metric": str(m["metric"])} for row in evaluate(points)]


def _tasks(todo: list[Point], batch: int) -> list[tuple[Callable, list[Point]]]:
    """Cost-only points in batches; points with accuracy grouped by simulator config (one measurement each)."""
    cost_only = [p for p in todo if p.accuracy is None]
    tasks: list[tuple[Callable, list[Point]]] = [(evaluate, cost_only[i:i + batch])
                                                 for i in range(0, len(cost_only), batch)]
    by_cfg: dict[str, list[Point]] = {}
    for p in todo:
        if p.accuracy is not None:
            key = p.sim_config().model_dump_json() + p.accuracy.model_dump_json(exclude={"axes"})
            by_cfg.setdefault(key, []).append(p)
    return tasks + [(evaluate_accuracy, group) for group in by_cfg.values()]


def connect(scheduler: str | None, workers: int):
    """A Dask client: on `scheduler` (tcp://host:port), or on a new LocalCluster of `workers` processes."""
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as e:
            raise XbarError(f"--scheduler {scheduler}: unreachable ({type(e).__name__}: {e})") from None
    # Dask's workers trim freed memory back to the OS at 64 KiB (MALLOC_TRIM_THRESHOLD_), which also fixes glibc's
    # mmap threshold: every multi-MB buffer of the crossbar kernels is then mapped afresh and page-faulted.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def disconnect(client) -> None:
    """Close the client, and the LocalCluster `connect` started for it (a user's scheduler stays up).
    Closing in this order keeps the workers from logging lost heartbeats at exit."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


def explore(pts: list[Point], db: ResultDB, client, batch: int = 64,
            progress: Callable[[int], None] | None = None) -> int:
    """Evaluate the points not yet in `db` on `client`, storing each finished task's rows in one transaction.

    Returns how many points were evaluated."""
    from dask.distributed import as_completed

    done = db.keys()
    todo = [p for p in pts if p.key not in done]
    todo = list({p.key: p for p in todo}.values())  # the same spec twice is one point
    log.info("%d points, %d already stored, %d to evaluate", len(pts), len(pts) - len(todo), len(todo))
    futures = [client.submit(fn, group, pure=False) for fn, group in _tasks(todo, batch)]
    for fut in as_completed(futures):
        rows = fut.result()
        db.insert(rows)
        if progress:
            progress(len(rows))
    return len(todo)
