"""Matplotlib figures of the report, each drawn from computed rows; the paper's values sit next to ours."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from xbarllm.report.reproduce import FIG13_BASELINES, FIG13_DC, FIG14_MODELS, Row


def _rows(rows: list[Row]) -> dict[str, Row]:
    return {r.item: r for r in rows}


def table7(rows: list[Row]) -> Figure:
    """Cycles and scale-cycle product vs S, paper and ours; BERT-Base ADP vs S relative to S = 1."""
    r = _rows(rows)
    s = list(range(1, 8))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, mark in (("cycles", "o"), ("scale-cycle product", "s")):
        a.plot(s, [r[f"Table 7 {name} S={i}"].paper for i in s], mark, mfc="none", ms=10, label=f"{name}, paper")
        a.plot(s, [r[f"Table 7 {name} S={i}"].ours for i in s], mark + "-", ms=4, label=f"{name}, ours")
    a.set(xlabel="S", title="Table 7")
    a.legend(fontsize=7)
    b.plot(s, [1.0] + [r[f"Table 7 BERT-Base ADP(S={i}) / ADP(S=1)"].ours for i in s[1:]], "o-", label="ours")
    b.plot([2], [0.91], "r*", ms=12, label="paper, S=2: 0.91")
    b.set(xlabel="S", ylabel="ADP / ADP(S=1)", title="BERT-Base area-delay product vs S")
    b.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig13(rows: list[Row]) -> Figure:
    """Our area vs latency over d_c for BERT-Base and BERT-Large, and ISAAC/PRIME/PipeLayer on the WS part;
    energy annotated."""
    r = _rows(rows)
    fig, ax = plt.subplots(figsize=(7, 5))
    for name in ("bert-base", "bert-large"):
        lat = [r[f"Fig. 13 {name} d_c={d} latency (us)"].ours / 1e3 for d in FIG13_DC]
        area = [r[f"Fig. 13 {name} d_c={d} area (mm2)"].ours for d in FIG13_DC]
        ax.plot(lat, area, "o-", label=f"ours, {name}")
        for d, x, y in zip(FIG13_DC, lat, area, strict=True):
            e = r[f"Fig. 13 {name} d_c={d} energy (mJ)"].ours
            ax.annotate(f"d_c={d} ({e:.1f} mJ)", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        for base, mark in zip(FIG13_BASELINES, "s^Dv", strict=True):
            x = r[f"Fig. 13 {name} {base} WS part latency (us)"].ours / 1e3
            y = r[f"Fig. 13 {name} {base} WS part area (mm2)"].ours
            e = r[f"Fig. 13 {name} {base} WS part energy (mJ)"].ours
            ax.plot([x], [y], mark, mfc="none", label=f"{base} (WS part), {name}")
            ax.annotate(f"({e:.1f} mJ)", (x, y), fontsize=6, xytext=(3, -8), textcoords="offset points")
    ax.annotate("paper: ours ≈ 20.7 mJ on BERT-Large; ISAAC's example label I(10.6)", (0.02, 0.03),
                xycoords="axes fraction", fontsize=7, color="red")
    ax.set(xscale="log", yscale="log", xlabel="latency (ms)", ylabel="area (mm²)",
           title="Fig. 13: area vs latency over d_c")
    ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def paired_bars(rows: list[Row], title: str) -> Figure:
    """Ours next to the paper for every row that has a paper value, on a log scale."""
    rows = [x for x in rows if x.paper]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [x.paper for x in rows], height=0.4, label="paper", color="grey")
    ax.barh([i - 0.2 for i in y], [x.ours for x in rows], height=0.4, label="ours", color="tab:blue")
    ax.set_yticks(list(y), [x.item for x in rows], fontsize=7)
    ax.set(xscale="log", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig14(rows: list[Row]) -> Figure:
    """ISAAC area / ours and our chip count from GPT2-XL to GPT-3; the paper's 51x for GPT-3 marked."""
    r = _rows(rows)
    ratio = [r[f"Fig. 14 {m} ISAAC area / ours"].ours for m in FIG14_MODELS]
    chips = [r[f"Fig. 14 {m} ours chips at 100 mm2 x 128 layers"].ours for m in FIG14_MODELS]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.bar(FIG14_MODELS, ratio, label="ours")
    a.plot([len(FIG14_MODELS) - 1], [51.0], "r*", ms=14, label="paper, GPT-3: 51x")
    a.set(ylabel="ISAAC area / our area", title="Fig. 14: area vs ISAAC")
    b.bar(FIG14_MODELS, chips)
    b.set(ylabel="chips (100 mm² × 128 layers)", title="our chips")
    for ax in (a, b):
        ax.tick_params(axis="x", rotation=45, labelsize=7)
    a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto(df: pd.DataFrame, front) -> Figure:
    """Latency vs area of every explored point, energy as colour, the Pareto front ringed."""
    fig, ax = plt.subplots(figsize=(7, 5))
    sc = ax.scatter(df.latency_us / 1e3, df.area_mm2, c=df.energy_mj, s=12, cmap="viridis")
    ax.scatter(df.latency_us[front] / 1e3, df.area_mm2[front], s=60, facecolors="none", edgecolors="red",
               label="Pareto front (area, energy, latency)")
    ax.set(xscale="log", xlabel="latency (ms)", ylabel="area (mm²)", title="Design-space exploration")
    fig.colorbar(sc, label="energy (mJ)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def accuracy(df: pd.DataFrame) -> Figure:
    """Metric vs the first swept axis of a `simulate --out` table, one line per value of the other axes."""
    axes = [c for c in df.columns if c not in ("task", "metric", "value", "seconds", "exp_overflow_calls",
                                              "exp_calls", "fp32_probe_accuracy_pct")]
    fig, ax = plt.subplots(figsize=(7, 5))
    x = axes[0] if axes else None
    groups = df.groupby(axes[1:]) if len(axes) > 1 else [("", df)]
    for key, g in groups:
        ax.plot(g[x].astype(str) if x else range(len(g)), g["value"], "o-", label=str(key))
    ax.set(xlabel=x or "point", ylabel=str(df["metric"].iloc[0]), title=f"Accuracy on {df['task'].iloc[0]}")
    ax.legend(fontsize=7, title=", ".join(axes[1:]) or None)
    fig.tight_layout()
    return fig


def flash(df: pd.DataFrame) -> Figure:
    """Per-token latency split (I/O, memory management, compute) of each flash configuration."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    left = [0.0] * len(df)
    for col, label in (("io_ms", "I/O"), ("mm_ms", "memory management"), ("compute_ms", "compute")):
        ax.barh(df["config"], df[col], left=left, label=label)
        left = [a + b for a, b in zip(left, df[col], strict=True)]
    ax.set(xlabel="ms per token", title="LLM in a flash: latency per token")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
