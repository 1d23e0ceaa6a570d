"""Design points per minute of `explore` on this machine with a Dask LocalCluster, 1 and 2 workers.

Target (issue 7): ≥ 20,000 cost-only points/min. Points: BERT-Base prefill at 128 and 256 tokens over
d_c × S × dense bits/cell × crossbar count × D1 size × cycle time (20,736 points). Cluster start-up and
the workers' first import and workload build are excluded (a warm-up task); resolving and hashing the
points is timed separately; writing the results to SQLite is included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from xbarllm.explore.db import ResultDB
from xbarllm.explore.run import connect, disconnect, explore
from xbarllm.explore.sweep import Sweep, points


def _warm() -> None:
    from xbarllm.explore.run import _table

    _table("bert-base", "prefill", 128), _table("bert-base", "prefill", 256)


def rate(pts, workers: int, batch: int) -> float:
    client = connect(None, workers)
    try:
        client.run(_warm)
        with tempfile.TemporaryDirectory() as tmp:
            db = ResultDB(Path(tmp) / "b.sqlite")
            t = time.perf_counter()
            n = explore(pts, db, client, batch=batch)
            dt = time.perf_counter() - t
            db.close()
    finally:
        disconnect(client)
    return n / dt * 60


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=1024)
    args = ap.parse_args()
    sweep = Sweep(models=["bert-base"], seq_lens=[128, 256],
                  axes={"compute.d_c": list(range(1, 65)), "compute.encoding_s": [1, 2, 3],
                        "dense.bits_per_cell": [1, 2], "compute.n_crossbars": [256, 1024, 4096],
                        "caches.d1_kib": [128, 256, 512], "timing.xbar_cycle_ns": [50, 100, 200]})
    t = time.perf_counter()
    pts = points(sweep)
    resolve = time.perf_counter() - t
    print(f"{len(pts)} points resolved and hashed in {resolve:.2f} s by the driver "
          f"({len(pts) / resolve * 60:,.0f} points/min; not counted below)")
    one = rate(pts, 1, args.batch)
    two = rate(pts, 2, args.batch)
    print(f"1 worker: {one:,.0f} points/min; 2 workers: {two:,.0f} points/min; scaling 1->2: {two / one:.2f}x")
    print(f"target >= 20,000 points/min: {'MET' if two >= 20000 else 'MISSED'} ({two / 20000:.2f} of target)")
    end_to_end = len(pts) / (resolve + len(pts) / two * 60) * 60
    print(f"end to end with 2 workers, resolving and hashing included: {end_to_end:,.0f} points/min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
