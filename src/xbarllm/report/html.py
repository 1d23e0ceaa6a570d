"""The static HTML report: every reproduced figure and table, paper next to ours, with the assumptions."""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from xbarllm.report import figures
from xbarllm.report.reproduce import Row, assumptions, fig12, fig13, fig14, table7, table10, table11
from xbarllm.spec import HardwareSpec, load_hardware

log = logging.getLogger(__name__)
STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}"
         "th{background:#eee}img{max-width:100%;border:1px solid #ddd}.missing{color:#a00}")


def save_png(fig: Figure, path: Path) -> None:
    """Write a figure as PNG atomically (a temporary file renamed into place)."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _rows_table(rows: list[Row]) -> str:
    def cell(v):
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))
    body = "".join(f"<tr><td>{html.escape(r.item)}</td><td>{cell(r.paper)}</td><td>{cell(r.ours)}</td>"
                   f"<td>{cell(r.ratio)}</td><td>{html.escape(r.note)}</td></tr>" for r in rows)
    return f"<table><tr><th>item</th><th>paper</th><th>ours</th><th>ours/paper</th><th>driver</th></tr>{body}</table>"


def _frame_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)


def write_report(out: str | Path, db: str | Path | None = None, sim: str | Path | None = None,
                 flash_dir: str | Path | None = None, hw: HardwareSpec | None = None) -> Path:
    """Write index.html and its PNG figures into `out`; optional DSE database, simulator CSV, flash results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hw = hw or load_hardware("proposed")
    parts: list[str] = []

    def section(title: str, text: str = "", fig: Callable[[], Figure] | None = None, name: str = "",
                table: str = "") -> None:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if text:
            parts.append(f"<p>{text}</p>")
        if fig is not None:
            save_png(fig(), out / f"{name}.png")
            parts.append(f'<img src="{name}.png" alt="{html.escape(title)}">')
        parts.append(table)

    t7, t10, t11, f12, f13, f14 = table7(hw), table10(hw), table11(hw), fig12(hw), fig13(hw), fig14(hw)
    section("Table 7: encoding base S", "Cycles and scale-cycle product per S (paper hollow, ours filled), and "
            "BERT-Base area-delay product relative to S = 1.", lambda: figures.table7(t7), "table7", _rows_table(t7))
    section("Fig. 12: ours vs multi-bit and single-bit crossbars", "Area and energy of 128x128 pinned-weight "
            "crossbars (MB: 4-bit cells, SB: 1-bit cells) over ours, with our d_c tuned to match their delay. "
            "The paper's values are averages over BERT-Base, BERT-Large, ResNet-34 and ResNet-152.",
            lambda: figures.paired_bars([r for r in f12 if r.paper], "Fig. 12: baseline / ours"), "fig12",
            _rows_table(f12))
    section("Fig. 13: area vs latency over column duplication d_c", "Each design builds 2·d_c columns per "
            "computation crossbar. ISAAC, PRIME and PipeLayer run the WS part only (their 8-bit versions, "
            "built from ISAAC's components, as the paper adapts them); Vesti streams its weights from off-chip.",
            lambda: figures.fig13(f13), "fig13", _rows_table(f13))
    section("Table 10: BERT-Large vs TPUv4 and A100", "", lambda: figures.paired_bars(t10, "Table 10, paper vs "
            "ours"), "table10", _rows_table(t10))
    section("Table 11: latency lower bound T_LB (row-by-row reading)", "", lambda: figures.paired_bars(
        t11, "Table 11, paper vs ours (us)"), "table11", _rows_table(t11))
    section("Fig. 14: scaling to GPT-3 against ISAAC", "", lambda: figures.fig14(f14), "fig14", _rows_table(f14))
    if db is not None:
        from xbarllm.explore.db import ResultDB
        from xbarllm.explore.pareto import front as pareto_front

        rdb = ResultDB(db)
        try:
            df = rdb.frame()
        finally:
            rdb.close()
        front, _ = pareto_front(df)
        section(f"Design-space exploration ({len(df)} points, {int(front.sum())} on the Pareto front)",
                html.escape(str(db)), lambda: figures.pareto(df, front), "pareto",
                _frame_table(df[front].drop(columns=["key", "created_at"])))
    if sim is not None:
        sdf = pd.read_csv(sim)
        section("Accuracy under noise and faults", html.escape(str(sim)), lambda: figures.accuracy(sdf), "accuracy",
                _frame_table(sdf))
    if flash_dir is not None and (Path(flash_dir) / "flash_latency.csv").is_file():
        fdf = pd.read_csv(Path(flash_dir) / "flash_latency.csv")
        extra = Path(flash_dir) / "flash_sparsity.csv"
        section("LLM in a flash", "Per-token latency by configuration.", lambda: figures.flash(fdf), "flash",
                _frame_table(fdf) + (_frame_table(pd.read_csv(extra)) if extra.is_file() else ""))
    section("Assumptions behind our values", "Spec field, value and source of every assumed knob.",
            table=_frame_table(pd.DataFrame(assumptions(hw))))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>xbarllm report</title>"
            f"<style>{STYLE}</style></head><body><h1>xbarllm: Wang et al. 2024 reproduced</h1>"
            f"<p>Hardware: {html.escape(hw.name)}. Every number is computed from the specs; the paper's values "
            f"are comparison targets only.</p>{''.join(parts)}</body></html>")
    tmp = out / "index.html.partial"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out / "index.html")
    return out / "index.html"
