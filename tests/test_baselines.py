"""Roofline and pinned-crossbar baselines, the reproduction rows, and their CLI commands."""

import itertools
import json

import pandas as pd
import pytest

from xbarllm import XbarError
from xbarllm.cli import main
from xbarllm.cost.roofline import dennard_area_scale, pinned_area_mm2, roofline
from xbarllm.report.reproduce import Row, assumptions, table7, table10
from xbarllm.spec import load_hardware, load_model
from xbarllm.spec.platform import load_platform
from xbarllm.workload import build, param_inventory


def test_roofline_by_hand_for_one_op():
    tpu = load_platform("tpuv4")
    t = build(load_model("bert-base"), seq_len=256)
    q = t[(t["op"] == "q_proj") & (t["layer"] == 0)]
    r = roofline(q, tpu)
    macs = 256 * 768 * 768
    compute_s = 2 * macs / 275e12
    memory_s = (768 * 768 + 2 * 256 * 768) / 1200e9
    assert r["latency_us"] == pytest.approx(max(compute_s, memory_s) * 1e6)
    assert r["energy_mj"] == pytest.approx(max(compute_s, memory_s) * 170 * 1e3)
    assert r["area_mm2"] == pytest.approx(400 * (32 / 7) ** 2) == dennard_area_scale(400, 7, 32)


def test_pinned_area_counts_crossbars():
    isaac = load_platform("isaac")
    params = param_inventory(load_model("gpt3-175b"))["total"]
    r = pinned_area_mm2(params, 8, isaac)
    assert r["crossbars"] == -(-params * 8 // (128 * 128 * 2))
    assert r["chips"] == -(-r["crossbars"] // 16128)
    assert r["area_mm2"] == pytest.approx(r["crossbars"] * 62.5 / 16128)


def test_platform_presets_need_sources(tmp_path):
    p = tmp_path / "gpu.yaml"
    p.write_text("name: g\nnode_nm: 7\npeak_int8_tops: 1\nmem_bw_gb_per_s: 1\npower_w: 1\ndie_area_mm2: 1\n"
                 "compute_efficiency: 1\nmemory_efficiency: 1\nsources: {node_nm: x}\n")
    with pytest.raises(XbarError, match="no source given for peak_int8_tops"):
        load_platform(p)


def test_reproduction_rows_are_computed_not_copied():
    hw = load_hardware()
    rows = {r.item: r for r in table10(hw)}
    ours = rows["Table 10 ours energy (mJ)"]
    assert ours.paper == 20.44 and ours.ours != ours.paper
    slower = table10(hw.with_updates({"timing.xbar_cycle_ns": 200.0}))
    adp = {r.item: r.ours for r in slower}["Table 10 ours ADP (mm2·s)"]
    assert adp > rows["Table 10 ours ADP (mm2·s)"].ours  # the row follows the spec
    t7 = {r.item: r for r in table7(hw)}
    assert t7["Table 7 cycles S=2"].ratio == 1.0


def test_large_differences_name_their_driver():
    assert Row("x", 1.0, 2.0, "the driver").note == "the driver"
    assert Row("x", 1.0, 1.2, "the driver").note == ""
    assert Row("x", None, 5.0, "the driver").ratio is None
    assert all(a["source"] for a in assumptions())


def test_estimate_and_reproduce_cli(capsys, tmp_path):
    assert main(["estimate", "bert-base", "--seq-len", "128", "--vs", "tpuv4", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["totals"]["energy_mj"] > 0 and "tpuv4" in obj["baselines"]
    assert main(["estimate", "bert-base", "--seq-len", "128", "--vs", "mb", "--vs", "isaac-crossbar", "--json"]) == 0
    base = json.loads(capsys.readouterr().out)["baselines"]
    assert set(base) == {"mb", "isaac-crossbar (WS part)"} and base["mb"]["energy_mj"] > 0
    assert main(["estimate", "smollm2-135m", "--phase", "decode", "--context", "64"]) == 0
    assert "Energy by component" in capsys.readouterr().out
    assert main(["reproduce", "--json", "--out", str(tmp_path / "r")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(set(r) == {"item", "paper", "ours", "ratio"} for r in rows)
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["assumptions.json", "rows.csv", "rows.json"]


@pytest.mark.parametrize("args,needle", [
    (["estimate", "bert-base", "--vs", "nope"], "unknown platform"),
    (["estimate", "bert-base", "--vs", "isaac"], "area-only pinned chip"),
    (["estimate", "bert-base", "--hw", "nope"], "unknown hardware"),
])
def test_estimate_bad_input(capsys, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_fig13_curve_trades_area_for_latency():
    """Building 2·d_c columns per crossbar: area rises and latency falls strictly with d_c."""
    from xbarllm.report.reproduce import FIG13_DC, fig13

    rows = {r.item: r.ours for r in fig13(load_hardware("proposed"))}
    for name in ("bert-base", "bert-large"):
        area = [rows[f"Fig. 13 {name} d_c={d} area (mm2)"] for d in FIG13_DC]
        lat = [rows[f"Fig. 13 {name} d_c={d} latency (us)"] for d in FIG13_DC]
        assert all(a < b for a, b in itertools.pairwise(area))
        assert all(a > b for a, b in itertools.pairwise(lat))


def _one_ws_op(M: int, K: int, N: int):
    t = build(load_model("bert-base"), seq_len=256)
    row = t[(t["op"] == "q_proj") & (t["layer"] == 0)].copy()
    row[["M", "K", "N"]] = M, K, N
    row["macs"] = M * K * N
    row[["act_in_bytes", "act_out_bytes", "weight_params", "weight_bytes"]] = M * K, M * N, K * N, K * N
    return row


def test_traditional_crossbar_by_hand_for_one_op():
    from xbarllm.cost.traditional import crossbar_um2, estimate_traditional

    hw, mb = load_hardware("proposed"), load_platform("mb")
    r = estimate_traditional(_one_ws_op(10, 256, 64), mb, hw)
    # 4-bit cells: 2 slices x (+,-) = 4 columns per output; 2 row tiles x 2 column tiles = 4 crossbars
    assert r["crossbars"] == 4
    assert r["latency_us"] == pytest.approx(10 * 0.1)  # one 100 ns cycle per input vector
    assert r["energy_pj"]["adc"] == pytest.approx(10 * 64 * 4 * 2 * hw.components["adc8"].energy_pj)
    cell = hw.components["memristor_cell"].energy_pj * (15 / 3)  # 16 levels vs ISAAC's 4, exponent 1
    assert r["energy_pj"]["cells"] == pytest.approx(10 * 256 * 64 * 4 * cell)
    caches = hw.caches
    cache_um2 = sum(caches.capacity_bytes(c) * 8 for c in ("D1", "D2", "T1", "T2", "S")) * \
        hw.components["cache_bit"].area_um2
    expect = 4 * sum(crossbar_um2(mb, hw).values()) + cache_um2 + hw.components["sqrt_div"].area_um2
    assert r["area_mm2"] == pytest.approx(expect / 1e6)


def test_single_bit_cells_need_four_times_the_mb_crossbars_and_follow_the_dac_area():
    from xbarllm.cost.traditional import crossbar_um2, estimate_traditional

    hw = load_hardware("proposed")
    op = _one_ws_op(8, 1024, 1024)
    mb, sb = (estimate_traditional(op, load_platform(n), hw) for n in ("mb", "sb"))
    assert sb["crossbars"] == 4 * mb["crossbars"]
    a0 = sum(crossbar_um2(load_platform("sb"), hw).values())
    bigger = hw.with_updates({"components.dac8.area_um2": hw.components["dac8"].area_um2 + 1.0})
    assert sum(crossbar_um2(load_platform("sb"), bigger).values()) == pytest.approx(a0 + 128)


def test_fig12_matches_delay_and_reports_the_implied_cell_energy():
    from xbarllm.report.reproduce import fig12

    rows = {r.item: r for r in fig12(load_hardware("proposed"))}
    for model, base in itertools.product(("bert-base", "bert-large"), ("MB", "SB")):
        assert rows[f"Fig. 12 {model} {base} matched ours latency (us)"].ours <= \
            rows[f"Fig. 12 {model} {base} latency (us)"].ours
        assert rows[f"Fig. 12 {model} {base} area / ours"].paper in (6.0, 39.0)
    assert rows["Fig. 12 bert-base MB cell read energy used (fJ)"].ours == pytest.approx(1.83 * 5)


def test_bit_serial_inputs_take_one_cycle_per_slice_and_ws_only_designs_refuse_nw():
    from xbarllm.cost.traditional import estimate_traditional

    hw, isaac = load_hardware("proposed"), load_platform("isaac-crossbar")
    r = estimate_traditional(_one_ws_op(10, 128, 32), isaac, hw)
    assert isaac.cycles_per_vector() == 8
    assert r["latency_us"] == pytest.approx(10 * 8 * 0.1)
    # 2-bit cells, one offset column per slice: 4 columns per output, 128 rows -> 1 x 1 crossbar
    assert r["crossbars"] == 1
    assert r["energy_pj"]["adc"] == pytest.approx(10 * 8 * 32 * 4 * hw.components["adc8"].energy_pj)
    with pytest.raises(XbarError, match="WS products only"):
        estimate_traditional(build(load_model("bert-base"), seq_len=16), isaac, hw)


def test_streamed_weights_cost_their_bits_and_hold_two_buffers():
    from xbarllm.cost.traditional import estimate_traditional

    hw, vesti = load_hardware("proposed"), load_platform("vesti")
    one = estimate_traditional(_one_ws_op(4, 512, 64), vesti, hw)
    two = estimate_traditional(pd.concat([_one_ws_op(4, 512, 64)] * 2), vesti, hw)
    assert one["energy_pj"]["weight_stream"] == pytest.approx(512 * 64 * 8 * 20.0)
    # 1-bit cells in (+,-) pairs: 16 columns per output -> 2 row tiles x 16 column tiles, double-buffered
    assert one["crossbars"] == two["crossbars"] == 2 * 2 * 16
    assert two["energy_pj"]["weight_stream"] == pytest.approx(2 * one["energy_pj"]["weight_stream"])
