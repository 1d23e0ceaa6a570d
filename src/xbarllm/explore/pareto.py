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
WORKLOAD = ["model", "phase", "seq_len"]  # designs are compared only on the same workload


def front(df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Pareto mask of explore results, per workload (model, phase, seq_len): over area, energy and latency,
    and accuracy where measured (maximised, or minimised for perplexity). Returns the mask and objectives."""
    rated = "accuracy" in df and df["accuracy"].notna().any()
    objectives = [*COST_OBJECTIVES, "accuracy"] if rated else COST_OBJECTIVES
    mask = np.zeros(len(df), dtype=bool)
    for _, idx in df.groupby(WORKLOAD, sort=False).indices.items():
        part = df.iloc[idx]
        if rated:
            part = part[part["accuracy"].notna()]
            lower = set(part["accuracy_metric"]) <= {"perplexity"}
            keep = pareto_mask(part, COST_OBJECTIVES + (["accuracy"] if lower else []), [] if lower else ["accuracy"])
        else:
            keep = pareto_mask(part, COST_OBJECTIVES)
        mask[df.index.get_indexer(part.index[keep])] = True
    return mask, objectives
