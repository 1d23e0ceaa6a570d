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
            rows[i] = {"key": p.key, "model": p.model, "phase": p.phase, "seq_len": p.seq_len, "axes": p.axes,
                       **{m: float(metrics[m][j]) for m in METRICS}}
    return rows


def connect(scheduler: str | None, workers: int):
    """A Dask client: on `scheduler` (tcp://host:port), or on a new LocalCluster of `workers` processes."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as e:
            raise XbarError(f"--scheduler {scheduler}: unreachable ({type(e).__name__}: {e})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)


def explore(pts: list[Point], db: ResultDB, client, batch: int = 64,
            progress: Callable[[int], None] | None = None) -> int:
    """Evaluate the points not yet in `db` on `client`, storing each finished batch in one transaction.

    Returns how many points were evaluated."""
    from dask.distributed import as_completed

    done = db.keys()
    todo = [p for p in pts if p.key not in done]
    todo = list({p.key: p for p in todo}.values())  # the same spec twice is one point
    log.info("%d points, %d already stored, %d to evaluate", len(pts), len(pts) - len(todo), len(todo))
    futures = [client.submit(evaluate, todo[i:i + batch], pure=False) for i in range(0, len(todo), batch)]
    for fut in as_completed(futures):
        rows = fut.result()
        db.insert(rows)
        if progress:
            progress(len(rows))
    return len(todo)
