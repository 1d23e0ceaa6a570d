"""Pareto front of design points."""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_mask(df: pd.DataFrame, minimize: list[str], maximize: tuple[str, ...] | list[str] = ()) -> np.ndarray:
    """True for rows no other row dominates (no worse in every objective, better in one)."""
    cols = [c for c in minimize] + [c for c in maximize]
    signs = np.array([1.0] * len(minimize) + [-1.0] * len(maximize))
    v = df[cols].to_numpy(np.float64) * signs
    keep = np.ones(len(v), dtype=bool)
    order = np.lexsort(v.T[::-1])  # sorted by the first objective, then the next: a dominator comes first
    for i in order:
        if not keep[i]:
            continue
        dominated = np.all(v >= v[i], axis=1) & np.any(v > v[i], axis=1)
        keep &= ~dominated
    return keep
