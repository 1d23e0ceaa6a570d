"""The `xbarllm` command line: a thin layer over the library. Bad input -> one line, exit code 2."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

from xbarllm.errors import XbarError

try:  # typer >= 0.2x vendors its own copy of click; older releases raise click's exceptions
    from typer._click import exceptions as _typer_click
except ImportError:  # pragma: no cover
    _typer_click = click.exceptions
_USAGE_ERRORS = (click.exceptions.ClickException, _typer_click.ClickException)
_HELP_ONLY = (click.exceptions.NoArgsIsHelpError, _typer_click.NoArgsIsHelpError)
_EXITS = (click.exceptions.Exit, typer.Exit)
_ABORTS = (click.exceptions.Abort, typer.Abort)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Area, energy, latency and accuracy of transformers on memristor crossbars.")
out = Console()
err = Console(stderr=True)


@app.callback()
def _root(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress to stderr")] = False) -> None:
    if verbose:
        import logging

        from rich.logging import RichHandler

        logging.basicConfig(level=logging.INFO, format="%(message)s", force=True,
                            handlers=[RichHandler(console=err, show_path=False)])


class PhaseOpt(StrEnum):
    prefill = "prefill"
    decode = "decode"


def _si(x: float) -> str:
    """Engineering notation: 1.23 G, 45.6 M, ..."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _exact(v: Any) -> str:
    """Exact integers with thousands separators; floats to 4 significant digits."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    return f"{v:,}" if isinstance(v, int) else f"{v:.4g}"


def _table(title: str, rows: list[dict[str, Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for col, first in (rows[0] if rows else {}).items():
        t.add_column(col, justify="left" if isinstance(first, str) and col not in ("ratio", "paper") else "right")
    for r in rows:
        t.add_row(*(v if isinstance(v, str) else _si(v) if isinstance(v, (int, float)) else str(v)
                    for v in r.values()))
    return t


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if o is None or str(o) == "<NA>":
        return None
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    """Run write(tmp) on a temporary file beside `path`, then rename: no partial file is ever left."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_table_atomic(df: Any, path: Path) -> None:
    """Write a DataFrame to .csv or .parquet atomically."""
    csv = path.suffix.lower() == ".csv"
    _atomic(path, lambda tmp: df.to_csv(tmp, index=False) if csv else df.to_parquet(tmp, index=False))


def write_text_atomic(text: str, path: Path) -> None:
    """Write text atomically."""
    _atomic(path, lambda tmp: Path(tmp).write_text(text))


def _check_out(path: Path | None) -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise XbarError(f"--out: {path}: use a .csv or .parquet file name")
    if not path.parent.is_dir():
        raise XbarError(f"--out: {path}: directory {path.parent} does not exist")


def _hardware(hw: str, sets: list[str] | None):
    """The hardware spec `hw` with --set PATH=VALUE overrides (values read as YAML scalars), validated."""
    import yaml

    from xbarllm.spec import load_hardware

    updates = {}
    for item in sets or []:
        path, eq, value = item.partition("=")
        if not eq or not path:
            raise XbarError(f"--set: '{item}': expected PATH=VALUE, e.g. compute.copies=4")
        try:
            updates[path] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise XbarError(f"--set: '{item}': value is not a YAML scalar") from None
    base = load_hardware(hw)
    return base.with_updates(updates) if updates else base


HwOpt = Annotated[str, typer.Option("--hw", help="hardware preset name or YAML file")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="PATH=VALUE (repeatable): override a hardware "
                                                  "field, e.g. compute.copies=4 or chip.digital_mac_units=1024")]
DigitalOpt = Annotated[list[str] | None, typer.Option("--digital", help="block (repeatable) computed on the "
                                                      "digital MAC unit instead of the crossbars, e.g. head")]


@app.command("map")
def map_cmd(
    model: Annotated[str, typer.Argument(help="model preset name, config.json, model directory or .gguf")],
    hw: HwOpt = "proposed",
    sets: SetOpt = None,
    digital: DigitalOpt = None,
    seq_len: Annotated[int, typer.Option("--seq-len", help="tokens per sequence (prefill), "
                                         "or encoder tokens (encoder-decoder)")] = 256,
    phase: Annotated[PhaseOpt, typer.Option("--phase", help="prefill or decode")] = PhaseOpt.prefill,
    context: Annotated[int | None, typer.Option("--context", help="decode: keys attended, "
                                                "own token included (default: seq-len)")] = None,
    batch: Annotated[int, typer.Option("--batch", help="sequences per pass")] = 1,
    out_file: Annotated[Path | None, typer.Option("--out", help="write per-op rows to .csv or .parquet")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
) -> None:
    """Compile MODEL into F(X·Y) sub-operations and map them onto the crossbar chip."""
    from xbarllm.mapping import by_block, map_workload
    from xbarllm.spec import load_model
    from xbarllm.workload import build

    _check_out(out_file)
    spec, hardware = load_model(model), _hardware(hw, sets)
    table = build(spec, seq_len=seq_len, phase=phase.value, batch=batch, context=context)
    mapped = map_workload(table, hardware, tuple(digital or ()))
    if out_file is not None:
        write_table_atomic(mapped.ops, out_file)
    head = {k: table.attrs[k] for k in ("model", "phase", "seq_len", "context", "batch")}
    if as_json:
        obj = {**head, "hardware": hardware.name, "params": table.attrs["params"],
               "totals": mapped.totals, "area_um2": mapped.area_um2,
               "caches": mapped.caches.to_dict(orient="records"),
               "ops": mapped.ops.to_dict(orient="records")}
        print(json.dumps(obj, default=_jsonable))
        return
    out.print(f"[bold]{spec.name}[/] on [bold]{hardware.name}[/]: "
              + ", ".join(f"{k}={v}" for k, v in head.items() if k != "model"))
    out.print(_table("Per block", by_block(mapped.ops).to_dict(orient="records")))
    t = mapped.totals
    out.print(_table("Totals", [{"item": k, "value": _exact(v)} for k, v in t.items()]))
    out.print(_table("Caches (Table 5 need vs capacity, bytes)",
                     [{k: ("-" if v is None or str(v) == "<NA>" else v) for k, v in r.items()}
                      for r in mapped.caches.to_dict(orient="records")]))
    out.print(_table("Area (mm²)", [{"part": k, "mm2": v / 1e6} for k, v in mapped.area_um2.items()]))
    if out_file is not None:
        out.print(f"wrote {len(mapped.ops)} rows to {out_file}")


@app.command("estimate")
def estimate_cmd(
    model: Annotated[str, typer.Argument(help="model preset name, config.json, model directory or .gguf")],
    hw: HwOpt = "proposed",
    sets: SetOpt = None,
    digital: DigitalOpt = None,
    vs: Annotated[list[str] | None, typer.Option("--vs", help="baseline to compare (repeatable): tpuv4, a100 "
                                                 "(rooflines), mb, sb, isaac-crossbar, prime, pipelayer "
                                                 "(crossbars), or a platform YAML")] = None,
    seq_len: Annotated[int, typer.Option("--seq-len", help="tokens per sequence")] = 256,
    phase: Annotated[PhaseOpt, typer.Option("--phase", help="prefill or decode")] = PhaseOpt.prefill,
    context: Annotated[int | None, typer.Option("--context", help="decode: keys attended")] = None,
    batch: Annotated[int, typer.Option("--batch", help="sequences per pass")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
) -> None:
    """Area, energy and latency of MODEL on the chip, per component, optionally beside baselines."""
    from xbarllm.cost import estimate
    from xbarllm.cost.roofline import roofline
    from xbarllm.cost.traditional import estimate_traditional
    from xbarllm.mapping import map_workload
    from xbarllm.spec import load_model
    from xbarllm.spec.platform import PinnedSpec, TraditionalSpec, load_platform
    from xbarllm.workload import build
    from xbarllm.workload import columns as C

    platforms = [load_platform(v) for v in vs or []]
    for p in platforms:
        if isinstance(p, PinnedSpec):
            raise XbarError(f"--vs: {p.name} is an area-only pinned chip (try tpuv4, a100, mb, sb, isaac-crossbar)")
    spec, hardware = load_model(model), _hardware(hw, sets)
    table = build(spec, seq_len=seq_len, phase=phase.value, batch=batch, context=context)
    est = estimate(map_workload(table, hardware, tuple(digital or ())), hardware)
    base = {}
    for p in platforms:
        if isinstance(p, TraditionalSpec):
            ws_only = p.write_ns_per_row is None
            rows = table[table[C.KIND] == "WS"] if ws_only else table
            base[p.name + (" (WS part)" if ws_only else "")] = {
                k: v for k, v in estimate_traditional(rows, p, hardware).items() if k != "energy_pj"}
        else:
            base[p.name] = roofline(table, p, node_nm=hardware.node_nm)
    if as_json:
        print(json.dumps({"model": spec.name, "hardware": hardware.name, "phase": phase.value,
                          "totals": est.totals, "area_um2": est.area_um2, "per_block": est.per_block.to_dict("records"),
                          "baselines": base}, default=_jsonable))
        return
    out.print(f"[bold]{spec.name}[/] on [bold]{hardware.name}[/] ({phase.value}, seq_len={seq_len}, batch={batch})")
    comp = [{"part": k, "energy_mj": est.totals[f"energy_{k}_mj"]} for k in est.energy_pj.columns]
    out.print(_table("Energy by component", comp))
    e_all, t_all = est.per_block["energy_pj"].sum(), est.per_block["latency_ns"].sum()
    out.print(_table("Per block", [{"block": r[C.BLOCK], "energy_mj": r["energy_pj"] * 1e-9,
                                    "energy_share": r["energy_pj"] / e_all, "latency_us": r["latency_ns"] * 1e-3,
                                    "latency_share": r["latency_ns"] / t_all}
                                   for r in est.per_block.to_dict("records")]))
    out.print(_table("Area by part (mm²)", [{"part": k, "mm2": v / 1e6} for k, v in est.area_um2.items()]))
    keys = ["area_mm2", "latency_us", "energy_mj", "adp_mm2_s", "pj_per_mac"]
    rows = [{"item": k, hardware.name: est.totals[k], **{n: b[k] for n, b in base.items()}} for k in keys]
    out.print(_table("Totals" + (" vs baselines (area scaled to the chip's node)" if base else ""), rows))
    t = est.totals
    out.print(_table("Latency", [{"item": k, "us": t[k]} for k in
                                 ("time_compute_bound_us", "time_weights_bound_us", "time_cache_bound_us",
                                  "t_lb_act_us", "t_lb_weight_us", "t_lb_us", "latency_over_t_lb")]))


@app.command("reproduce")
def reproduce_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the rows as a JSON list")] = False,
    out_dir: Annotated[Path | None, typer.Option("--out", help="also write rows.csv, rows.json and "
                                                 "assumptions.json to this directory")] = None,
) -> None:
    """Reproduce the paper's Tables 7, 10, 11 and Figs. 12-14: paper, ours, ratio."""
    import pandas as pd

    from xbarllm.report.reproduce import assumptions, reproduce

    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise XbarError(f"--out: {out_dir} is a file, not a directory")
    rows, assumed = reproduce(), assumptions()
    records = [r.as_dict() for r in rows]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        frame = pd.DataFrame([{**r.as_dict(), "note": r.note} for r in rows])
        write_table_atomic(frame, out_dir / "rows.csv")
        write_text_atomic(json.dumps(records, indent=1), out_dir / "rows.json")
        write_text_atomic(json.dumps(assumed, indent=1), out_dir / "assumptions.json")
    if as_json:
        print(json.dumps(records))
        return
    out.print(_table("Paper vs ours", [{"item": r.item, "paper": "-" if r.paper is None else r.paper,
                                        "ours": r.ours, "ratio": "-" if r.ratio is None else f"{r.ratio:.3f}",
                                        "what drives a >30% difference": r.note} for r in rows]))
    out.print(_table("Assumptions behind our values", assumed))


@app.command("presets")
def presets_cmd() -> None:
    """List the presets shipped with xbarllm: models, hardware, baseline platforms and simulated chips."""
    from xbarllm.sim.config import sim_presets
    from xbarllm.spec.hardware import hardware_presets
    from xbarllm.spec.model import model_presets
    from xbarllm.spec.platform import platform_presets

    out.print("models:    " + ", ".join(model_presets()))
    out.print("hardware:  " + ", ".join(hardware_presets()))
    out.print("platforms: " + ", ".join(platform_presets()))
    out.print("simulate:  " + ", ".join(sim_presets()) + " (--config)")


from xbarllm.cli_explore import explore_cmd, report_cmd  # noqa: E402  (these read this module's consoles)
from xbarllm.cli_flash import flash_app  # noqa: E402
from xbarllm.cli_sim import simulate_cmd  # noqa: E402

app.command("simulate")(simulate_cmd)
app.command("explore")(explore_cmd)
app.command("report")(report_cmd)
app.add_typer(flash_app, name="flash")


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the app; bad input of any kind prints one line and exits 2."""
    try:
        app(args=argv, prog_name="xbarllm", standalone_mode=False)
    except _EXITS as e:
        return getattr(e, "exit_code", 0)
    except _HELP_ONLY as e:  # bare `xbarllm` or a group without a command: show help
        out.print(e.format_message(), highlight=False, markup=False)
        return 0
    except _USAGE_ERRORS as e:  # bad flag, bad value, missing argument, unknown command
        err.print(f"error: {e.format_message()}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except XbarError as e:
        err.print(f"error: {e}", highlight=False, soft_wrap=True, markup=False)
        return 2
    except _ABORTS:
        err.print("aborted")
        return 130
    return 0


def run() -> None:
    """Console-script wrapper: exit with main()'s code."""
    sys.exit(main())


if __name__ == "__main__":
    run()
