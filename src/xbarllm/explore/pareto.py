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


COST_OBJECTIVES = ["area_mm2", "energy_mj", "latency_us"]


def front(df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Pareto mask of explore results over area, energy and latency, and accuracy where measured
    (maximised, or minimised for perplexity); returns the mask and the objectives used."""
    if "accuracy" not in df or df["accuracy"].isna().all():
        return pareto_mask(df, COST_OBJECTIVES), COST_OBJECTIVES
    rated = df["accuracy"].notna().to_numpy()
    lower_is_better = set(df.loc[rated, "accuracy_metric"]) <= {"perplexity"}
    mask = np.zeros(len(df), dtype=bool)
    mask[rated] = pareto_mask(df[rated], COST_OBJECTIVES + (["accuracy"] if lower_is_better else []),
                              [] if lower_is_better else ["accuracy"])
    return mask, [*COST_OBJECTIVES, "accuracy"]
