"""Design-space exploration: Pareto front, determinism, crash safety under SIGKILL, bad input."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xbarllm.cli import main
from xbarllm.explore.pareto import pareto_mask

SWEEP = """hardware: proposed
models: [bert-base, gpt2]
phases: [prefill, decode]
seq_lens: [128]
axes:
  compute.encoding_s: [1, 2]
  compute.d_c: [16, 64]
"""


def test_front_is_taken_per_workload():
    from xbarllm.explore.pareto import front

    df = pd.DataFrame({"model": ["small", "small", "big", "big"], "phase": "prefill", "seq_len": 256,
                       "area_mm2": [1, 2, 10, 20], "energy_mj": [1, 2, 10, 20], "latency_us": [1, 2, 10, 20]})
    mask, objectives = front(df)
    assert mask.tolist() == [True, False, True, False] and objectives == ["area_mm2", "energy_mj", "latency_us"]
    rated = df.assign(accuracy=[90.0, 95.0, 80.0, 85.0], accuracy_metric="spearman_x100")
    assert front(rated)[0].tolist() == [True, True, True, True]


def test_pareto_front_by_hand():
    df = pd.DataFrame({"a": [1, 2, 3, 1, 2], "b": [3, 2, 1, 3, 3], "c": [1, 1, 1, 0, 1]})
    # row 0 is dominated by row 3 (same a, b; lower c); row 4 by row 1; rows 1, 2, 3 trade off.
    assert pareto_mask(df, ["a", "b", "c"]).tolist() == [False, True, True, True, False]
    assert pareto_mask(df, ["a"], ["c"]).tolist() == [True, False, False, False, False]
    acc = pd.DataFrame({"area": [1.0, 1.0, 2.0], "acc": [0.5, 0.9, 0.95]})
    assert pareto_mask(acc, ["area"], ["acc"]).tolist() == [False, True, True]


def test_pareto_matches_brute_force():
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.integers(0, 6, size=(200, 3)), columns=["x", "y", "z"])
    v = df.to_numpy()
    brute = [not any((v[j] <= v[i]).all() and (v[j] < v[i]).any() for j in range(len(v))) for i in range(len(v))]
    assert pareto_mask(df, ["x", "y", "z"]).tolist() == brute


def _rows(db):
    with sqlite3.connect(db) as c:
        return c.execute("SELECT * FROM results ORDER BY key").fetchall()


def test_same_sweep_same_database(tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(SWEEP)
    for name in ("a", "b"):
        assert main(["explore", str(sweep), "--db", str(tmp_path / f"{name}.sqlite"), "--workers", "1",
                     "--batch", "3"]) == 0
    a, b = _rows(tmp_path / "a.sqlite"), _rows(tmp_path / "b.sqlite")
    assert len(a) == 12  # bert-base has no decode phase: 3 workloads x 4 designs
    assert [r[:-1] for r in a] == [r[:-1] for r in b]  # all but created_at
    assert (tmp_path / "a.pareto.png").stat().st_size > 0


def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path):
    sweep = tmp_path / "big.yaml"
    sweep.write_text(SWEEP.replace("[16, 64]", "[" + ", ".join(str(d) for d in range(1, 65)) + "]"))
    db = tmp_path / "r.sqlite"
    cmd = [str(Path(sys.executable).parent / "xbarllm"), "explore", str(sweep), "--db", str(db), "--workers", "2",
           "--batch", "2"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if db.exists():
                try:
                    if len(_rows(db)) >= 10:
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    partial = len(_rows(db))
    assert 10 <= partial < 384, partial
    assert main(["explore", str(sweep), "--db", str(db), "--resume", "--workers", "2", "--batch", "16"]) == 0
    rows = _rows(db)
    assert len(rows) == 384 and len({r[0] for r in rows}) == 384


@pytest.mark.parametrize(("text", "extra", "needle"), [
    (SWEEP.replace("compute.d_c", "compute.dc"), [], "axes.compute.dc: unknown spec field"),
    (SWEEP.replace("[bert-base, gpt2]", "[]"), [], "models"),
    (SWEEP, ["--scheduler", "tcp://127.0.0.1:9"], "unreachable"),
    (SWEEP.replace("[1, 2]", "[]"), [], "lists no values"),
])
def test_bad_input_one_line_and_database_untouched(tmp_path, capsys, text, extra, needle):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(text)
    db = tmp_path / "keep.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("CREATE TABLE results (key TEXT PRIMARY KEY)")
        c.execute("INSERT INTO results VALUES ('x')")
    before = db.read_bytes()
    assert main(["explore", str(sweep), "--db", str(db), "--resume", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert db.read_bytes() == before


def test_vectorised_evaluation_equals_the_per_point_cost_model():
    """explore evaluates points in vectorised batches; every metric must equal cost.estimate's, point by point."""
    from xbarllm import cost, mapping
    from xbarllm.explore.run import _table, evaluate
    from xbarllm.explore.sweep import Sweep, points

    sweep = Sweep(models=["bert-base", "smollm2-135m"], phases=["prefill", "decode"], seq_lens=[64, 256],
                  axes={"compute.d_c": [1, 3, 64], "compute.encoding_s": [1, 3], "caches.d1_kib": [100.5, 256],
                        "compute.n_crossbars": [16, 4096], "components.adc8.energy_pj": [1.0, 3.3],
                        "dense.bits_per_cell": [1, 2]})
    pts = points(sweep)
    for p, row in zip(pts, evaluate(pts), strict=True):
        mapped = mapping.map(_table(p.model, p.phase, p.seq_len), p.hardware)
        totals = cost.estimate(mapped).totals
        for m in ("area_mm2", "energy_mj", "latency_us", "adp_mm2_s", "pj_per_mac"):
            assert row[m] == pytest.approx(totals[m], rel=1e-12), (p.axes, m)
        assert row["chips"] == mapped.totals["chips"]


def test_accuracy_axes_measure_once_per_simulator_config_and_join_the_front(tmp_path):
    from xbarllm.explore.run import _tasks
    from xbarllm.explore.sweep import load_sweep, points

    sweep = tmp_path / "acc.yaml"
    sweep.write_text("models: [bert-base]\naxes: {compute.d_c: [16, 64]}\n"
                     "accuracy: {task: stsb, limit: 3, axes: {noise: [0, 0.05]}}\n")
    pts = points(load_sweep(sweep))
    assert len(pts) == 4 and len({p.key for p in pts}) == 4
    groups = [g for fn, g in _tasks(pts, batch=64)]
    assert sorted(len(g) for g in groups) == [2, 2]  # d_c leaves the numerics alone
    assert pts[0].sim_config().encoding_s == 2 and pts[0].sim_config().bits_per_cell == 2
    db = tmp_path / "acc.sqlite"
    assert main(["explore", str(sweep), "--db", str(db), "--workers", "1"]) == 0
    df = pd.read_sql("SELECT * FROM results", sqlite3.connect(db))
    assert len(df) == 4 and df["accuracy"].notna().all() and set(df["accuracy_metric"]) == {"spearman_x100"}
    by_noise = df.groupby(df["axes"].str.contains('"sim.noise": 0.05'))["accuracy"].nunique()
    assert (by_noise == 1).all()  # the two d_c values of one noise level share their measurement


def test_unknown_accuracy_axis_is_one_line_and_leaves_the_db(tmp_path, capsys):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("models: [bert-base]\naxes: {compute.d_c: [16]}\naccuracy: {task: stsb, axes: {S: [1]}}\n")
    db = tmp_path / "r.sqlite"
    db.write_bytes(b"")
    assert main(["explore", str(sweep), "--db", str(db), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "accuracy.axes.S" in err[0]
    assert db.read_bytes() == b""


def test_accuracy_config_sets_the_chip_before_hardware_and_axes(tmp_path):
    from xbarllm.explore.run import _tasks
    from xbarllm.explore.sweep import load_sweep, points

    chip = tmp_path / "chip.yaml"
    chip.write_text("adc_overrange: reconvert\nrtn: 0.05\nseed: 3\nencoding_s: 2\n")
    sweep = tmp_path / "acc.yaml"
    text = ("models: [bert-base]\naxes: {compute.d_c: [16, 64]}\n"
            "accuracy: {task: stsb, limit: 3, axes: {noise: [0, 0.02]}, config: %s}\n")
    sweep.write_text(text % chip)
    pts = points(load_sweep(sweep))
    cfgs = {p.sim_config() for p in pts}
    assert {c.rtn for c in cfgs} == {0.0, 0.02}  # the axis overrides the config's rtn
    assert {(c.adc_overrange, c.seed, c.encoding_s) for c in cfgs} == {("reconvert", 3, 2)}
    assert sorted(len(g) for _, g in _tasks(pts, batch=64)) == [2, 2]
    keys = {p.key for p in pts}
    chip.write_text("adc_overrange: clip\nrtn: 0.05\nseed: 3\n")  # an edited config is a new point
    assert keys.isdisjoint(p.key for p in points(load_sweep(sweep)))
    sweep.write_text(text.replace(", config: %s", ""))
    assert keys.isdisjoint(p.key for p in points(load_sweep(sweep)))
    assert {p.sim_config().adc_overrange for p in points(load_sweep(sweep))} == {"clip"}


@pytest.mark.parametrize("config, expect", [
    ("act11-reconvert", "accuracy.config: act11-reconvert sets act_bits 11, but the hardware has compute.act_bits 8"),
    ("nope", "accuracy: unknown sim config 'nope'"),
])
def test_bad_accuracy_config_is_one_line(tmp_path, capsys, config, expect):
    sweep = tmp_path / "bad.yaml"
    sweep.write_text("models: [bert-base]\naxes: {compute.d_c: [16]}\n"
                     f"accuracy: {{task: stsb, config: {config}}}\n")
    assert main(["explore", str(sweep), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (tmp_path / "r.sqlite").exists()


def test_accuracy_config_agrees_with_hardware_axes(tmp_path):
    from xbarllm.explore.sweep import load_sweep, points

    sweep = tmp_path / "ok.yaml"
    sweep.write_text("models: [bert-base]\naxes: {compute.act_bits: [11]}\n"
                     "accuracy: {task: stsb, config: act11-reconvert}\n")
    (p,) = points(load_sweep(sweep))
    assert (p.sim_config().act_bits, p.sim_config().adc_overrange, p.sim_config().rtn) == (11, "reconvert", 0.05)


@pytest.mark.parametrize("example", sorted((Path(__file__).parent.parent / "examples").glob("sweep_*.yaml")),
                         ids=lambda p: p.name)
def test_example_sweeps_load(example):
    from xbarllm.explore.sweep import load_sweep, points

    assert points(load_sweep(example))
