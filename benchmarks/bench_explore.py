"""Design points per minute of `explore` on this machine with a Dask LocalCluster, 1 and 2 workers.

Target (issue 7): ≥ 20,000 cost-only points/min. Points: BERT-Base prefill at 256 tokens over d_c × S ×
dense bits/cell. Cluster start-up is excluded; writing the results to SQLite is included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from xbarllm.explore.db import ResultDB
from xbarllm.explore.run import connect, explore
from xbarllm.explore.sweep import Sweep, points


def rate(pts, workers: int, batch: int) -> float:
    client = connect(None, workers)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db = ResultDB(Path(tmp) / "b.sqlite")
            t = time.perf_counter()
            n = explore(pts, db, client, batch=batch)
            dt = time.perf_counter() - t
            db.close()
    finally:
        client.close()
    return n / dt * 60


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    sweep = Sweep(models=["bert-base"], seq_lens=[256],
                  axes={"compute.d_c": list(range(1, 65)), "compute.encoding_s": [1, 2, 3],
                        "dense.bits_per_cell": [1, 2]})
    t = time.perf_counter()
    pts = points(sweep)
    print(f"{len(pts)} points resolved and hashed in {time.perf_counter() - t:.2f} s (driver, not counted below)")
    one = rate(pts, 1, args.batch)
    two = rate(pts, 2, args.batch)
    print(f"1 worker: {one:,.0f} points/min; 2 workers: {two:,.0f} points/min; scaling 1->2: {two / one:.2f}x")
    print(f"target >= 20,000 points/min: {'MET' if two >= 20000 else 'MISSED'} ({two / 20000:.2f} of target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
