"""Cost model: sums, linearity in layers, monotone latency in d_c, sources, bounds."""


import itertools

import numpy as np
import pytest
from conftest import config
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import hf_configs

from xbarllm import cost, mapping
from xbarllm.cost.events import COMPONENTS, CROSSBAR_EVENTS
from xbarllm.mapping import columns as MC
from xbarllm.spec import load_hardware, load_model
from xbarllm.spec.model import from_hf_config
from xbarllm.workload import build
from xbarllm.workload import columns as C


def _estimate(spec, hw=None, **kw):
    hw = hw or load_hardware()
    return cost.estimate(mapping.map(build(spec, **kw), hw), hw)


@settings(max_examples=30, deadline=None)
@given(hf_configs(), st.integers(1, 64), st.sampled_from(["prefill", "decode"]))
def test_component_sums_equal_totals(kw, L, phase):
    spec = from_hf_config(config(**kw), "random")
    if phase == "decode" and spec.family == "encoder":
        return
    e = _estimate(spec, seq_len=L, phase=phase)
    t = e.totals
    parts = sum(t[f"energy_{k}_mj"] for k in COMPONENTS)
    assert parts == pytest.approx(t["energy_mj"], rel=1e-12)
    assert e.per_layer["energy_pj"].sum() * 1e-9 == pytest.approx(t["energy_mj"], rel=1e-12)
    assert e.per_layer["latency_ns"].sum() * 1e-3 == pytest.approx(t["latency_us"], rel=1e-12)
    assert e.per_block["energy_pj"].sum() * 1e-9 == pytest.approx(t["energy_mj"], rel=1e-12)
    assert e.per_block["latency_ns"].sum() * 1e-3 == pytest.approx(t["latency_us"], rel=1e-12)
    bounds = sum(t[f"time_{k}_bound_us"] for k in ("compute", "weights", "cache"))
    assert bounds == pytest.approx(t["latency_us"], rel=1e-12)
    assert t["latency_us"] >= t["t_lb_us"] * (1 - 1e-12)  # no schedule beats Eq. 8's bound


def test_energy_is_linear_in_layers():
    base = load_model("bert-base")
    e = {n: _estimate(base.model_copy(update={"n_layers": n}),
                      seq_len=128).totals["energy_mj"] for n in (1, 2, 6, 12)}
    per_layer = e[2] - e[1]
    for n in (6, 12):
        assert e[n] == pytest.approx(e[1] + (n - 1) * per_layer, rel=1e-9)


def test_latency_is_monotone_in_d_c():
    table = build(load_model("bert-large"), seq_len=256)
    hw = load_hardware()
    lat = [cost.estimate(mapping.map(table, h), h).totals["latency_us"]
           for h in (hw.with_updates({"compute.d_c": dc}) for dc in (1, 2, 4, 8, 16, 32, 64))]
    assert all(a >= b for a, b in itertools.pairwise(lat)) and lat[0] > lat[-1]


def test_energy_moves_by_the_component_change():
    hw = load_hardware()
    table = build(load_model("bert-base"), seq_len=64)
    m = mapping.map(table, hw)
    before = cost.estimate(m, hw)
    bumped = hw.with_updates({"components.adc8.energy_pj": hw.components["adc8"].energy_pj + 1.0})
    after = cost.estimate(mapping.map(table, bumped), bumped)
    conversions = before.energy_pj["adc"].sum() / hw.components["adc8"].energy_pj
    assert (after.totals["energy_mj"] - before.totals["energy_mj"]) * 1e9 == pytest.approx(conversions)


def test_every_component_has_sources_and_each_cost_event_is_priced():
    hw = load_hardware()
    for name, comp in hw.components.items():
        assert len(comp.source) > 20 and len(comp.energy_source) > 20, name
    assert set(COMPONENTS.values()) <= set(hw.components)


def test_adc_sharing_stretches_the_cycle():
    hw = load_hardware()
    assert cost.cycle_ns(hw) == 100.0  # 2·64 conversions at 1.28 GS/s = exactly 100 ns
    slow = hw.with_updates({"timing.adc_rate_gsps": 0.64})
    assert cost.cycle_ns(slow) == pytest.approx(200.0)


def test_decode_is_weight_heavy_and_prefill_is_not():
    smol = load_model("smollm2-135m")
    dec = _estimate(smol, phase="decode", context=512).totals
    pre = _estimate(smol, seq_len=512).totals
    assert dec["t_lb_weight_us"] > dec["t_lb_act_us"]
    assert pre["energy_link_mj"] == pytest.approx(dec["energy_link_mj"])  # same weights streamed once
    assert pre["energy_adc_mj"] > 100 * dec["energy_adc_mj"]


def test_causal_ops_cost_less_than_their_box():
    e = _estimate(load_model("gpt2"), seq_len=256)
    ops = mapping.map(build(load_model("gpt2"), seq_len=256), load_hardware()).ops
    qk = (ops[C.OP] == "qk").to_numpy()
    full = e.energy_pj.loc[qk, "cells"].to_numpy()
    box = (ops.loc[qk, C.COUNT] * ops.loc[qk, C.M] * ops.loc[qk, C.K] * ops.loc[qk, C.N]).to_numpy()
    assert np.all(full < box * 2 * 3 * load_hardware().components["resistor_cell"].energy_pj)


@pytest.mark.parametrize("copies", [2, 4, 8])
def test_copies_multiply_the_crossbar_work_and_leave_the_area(copies):
    # d_model 576 = 9 tiles of 64 elements at copies 1, 9·copies tiles of 64/copies at copies r: every
    # per-tile, per-row or per-cell event of a WS product grows by exactly r; weights and caches do not.
    table = build(load_model("smollm2-135m"), seq_len=64)
    hw = load_hardware()
    more = hw.with_updates({"compute.copies": copies})
    one, many = (cost.estimate(mapping.map(table, h), h) for h in (hw, more))
    q = (table[C.OP] == "q_proj").to_numpy()
    for part in ("cells", "adc", "dac", "control_registers", "shift_add"):
        assert many.energy_pj.loc[q, part].sum() == pytest.approx(copies * one.energy_pj.loc[q, part].sum()), part
    for part in ("encoder", "link", "caches", "dense_cells"):
        assert many.totals[f"energy_{part}_mj"] == one.totals[f"energy_{part}_mj"], part
    assert many.area_um2 == one.area_um2
    assert one.totals["latency_us"] < many.totals["latency_us"] <= copies * one.totals["latency_us"] * (1 + 1e-12)
    assert cost.totals_many(table, [hw, more])["energy_mj"] == pytest.approx(
        [one.totals["energy_mj"], many.totals["energy_mj"]], rel=1e-12)


def test_a_digital_block_leaves_the_crossbars_and_costs_its_macs():
    table = build(load_model("smollm2-135m"), seq_len=64)
    hw = load_hardware().with_updates({"chip.digital_mac_units": 256})
    m0, m = mapping.map(table, hw), mapping.map(table, hw, ("head",))
    e0, e = cost.estimate(m0, hw), cost.estimate(m, hw)
    head = (table[C.BLOCK] == "head").to_numpy()
    macs = table.loc[head, C.MACS].to_numpy(np.float64)
    assert (e.energy_pj.loc[head, list(CROSSBAR_EVENTS)] == 0).all().all()
    unit = hw.components["digital_mac"]
    assert np.allclose(e.energy_pj.loc[head, "digital_mac"], macs * unit.energy_pj)
    assert np.allclose(e.latency_ns.loc[head, "compute"], macs / (256 * unit.rate_hz) * 1e9)
    for part in ("link", "dense_cells", "caches", "f_unit"):  # weights still come from the dense crossbars
        assert np.array_equal(e.energy_pj[part], e0.energy_pj[part]), part
    assert e.energy_pj.loc[~head].equals(e0.energy_pj.loc[~head])
    assert e.latency_ns.loc[~head].equals(e0.latency_ns.loc[~head])
    assert m.totals["digital_macs"] == macs.sum() and m0.totals["digital_macs"] == 0
    assert m.totals["xbar_cycles"] == m0.totals["xbar_cycles"] - m0.ops.loc[head, MC.CYCLES].sum()
    assert e.area_um2["digital_unit"] == 256 * unit.area_um2 == e0.area_um2["digital_unit"]
    assert load_hardware().compute.copies == 1 and mapping.map(table, load_hardware()).area_um2["digital_unit"] == 0
