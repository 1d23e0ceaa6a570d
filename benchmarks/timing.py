"""Timing helper shared by the benchmarks: best and median wall time of repeated calls."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeats: int = 7) -> tuple[float, float]:
    """(best, median) seconds over `repeats` calls of fn."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)
