"""Mapping: Table 7 digits, tiles and cycles of a hand-worked op, caches, dense banks, chips."""

import math

import pytest
from conftest import config
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import hf_configs

from xbarllm import mapping
from xbarllm.mapping import columns as MC
from xbarllm.mapping.area import chip_um2, compute_crossbar_um2
from xbarllm.mapping.encoding import base, digits, scale_cycle_product
from xbarllm.spec import load_hardware, load_model
from xbarllm.spec.model import from_hf_config
from xbarllm.workload import build
from xbarllm.workload import columns as C

# Paper Table 7 (INT8 activations), S = 1..7.
TABLE7_BASE = [3, 7, 15, 31, 63, 127, 255]
TABLE7_CYCLES = [6, 3, 3, 2, 2, 2, 1]
TABLE7_SCALE_CYCLE = [6, 6, 9, 8, 10, 12, 7]


def test_table7_cycles_and_scale_cycle_products_are_exact():
    assert [base(s) for s in range(1, 8)] == TABLE7_BASE
    assert [digits(s, 8) for s in range(1, 8)] == TABLE7_CYCLES
    assert [scale_cycle_product(s, 8) for s in range(1, 8)] == TABLE7_SCALE_CYCLE


@given(st.integers(1, 8), st.integers(2, 16))
def test_digits_are_the_fewest_that_cover_the_range(s, bits):
    b, top, n = base(s), 2 ** (bits - 1) - 1, digits(s, bits)
    assert (b**n - 1) // 2 >= top
    assert n == 1 or (b ** (n - 1) - 1) // 2 < top


def test_q_proj_of_bert_base_by_hand():
    hw = load_hardware()  # S=2 -> 64 K elements per crossbar, d_c=64, 1024 crossbars, 3 digits
    ops = mapping.map(build(load_model("bert-base"), seq_len=256), hw).ops
    q = ops[(ops[C.OP] == "q_proj") & (ops[C.LAYER] == 0)].iloc[0]
    assert q[MC.K_PER_XBAR] == 64 and q[MC.ROW_TILES] == 768 // 64
    assert q[MC.UNITS] == 768 * 12 and q[MC.XBARS] == 1024 and q[MC.ROUNDS] == math.ceil(9216 / 1024)
    assert q[MC.ACT_GROUPS] == 256 // 64 and q[MC.CYCLES] == 9 * 4 * 3


def test_dense_crossbars_hold_every_weight():
    m = mapping.map(build(load_model("bert-large"), seq_len=256), load_hardware())
    bits = 334_092_288 * 8
    assert m.totals["stored_params"] == 334_092_288
    assert m.totals["dense_crossbars"] == math.ceil(bits / (1024 * 65536 * 2)) == 20


def test_table5_sizes_fit_bert_large_at_256_tokens_exactly():
    caches = mapping.map(build(load_model("bert-large"), seq_len=256), load_hardware()).caches
    need = caches.set_index("cache")
    assert need.loc["D1", "need_typical_bytes"] == 256 * 1024 == need.loc["D1", "capacity_bytes"]
    assert need.loc["T1", "need_typical_bytes"] == 256 * 64 and need.loc["S", "need_typical_bytes"] == 256 * 256
    assert need["fits"].all()
    longer = mapping.map(build(load_model("bert-large"), seq_len=512), load_hardware()).caches
    assert not longer.set_index("cache").loc["S", "fits"]


def test_decode_reports_the_kv_cache():
    m = mapping.map(build(load_model("smollm2-135m"), phase="decode", context=1000), load_hardware())
    kv = m.caches.set_index("cache").loc["KV", "need_typical_bytes"]
    assert kv == 2 * 30 * 1000 * 3 * 64  # K and V, 30 layers, 3 KV heads of 64, 1 byte each


def test_area_moves_by_the_component_change():
    hw = load_hardware()
    base_area = chip_um2(hw, 10)
    bumped = hw.with_updates({"components.adc8.area_um2": hw.components["adc8"].area_um2 + 100.0})
    new_area = chip_um2(bumped, 10)
    assert new_area["compute_crossbars"] - base_area["compute_crossbars"] == pytest.approx(1024 * 100.0)
    assert new_area["dense_crossbars"] == base_area["dense_crossbars"]  # the 2-bit ADC is its own part
    parts = compute_crossbar_um2(hw)
    assert parts["control_registers"] == 128 * 64 * 6 * hw.components["control_register_bit"].area_um2


def test_chips_follow_the_area_cap():
    hw = load_hardware()
    m = mapping.map(build(load_model("gpt3-175b"), seq_len=64), hw)
    assert m.totals["chips"] == math.ceil(m.totals["area_mm2"] / 100)
    stacked = mapping.map(build(load_model("gpt3-175b"), seq_len=64), hw.with_updates({"chip.stacked_layers": 128}))
    assert stacked.totals["chips"] == 1


@settings(max_examples=40, deadline=None)
@given(hf_configs(), st.integers(1, 48), st.sampled_from(["prefill", "decode"]),
       st.integers(1, 4), st.integers(1, 7), st.sampled_from([1, 2, 8, 64]), st.sampled_from([1, 16, 1024]))
def test_per_op_sums_equal_totals(kw, L, phase, s, batch, d_c, n_xbars):
    spec = from_hf_config(config(**kw), "random")
    if phase == "decode" and spec.family == "encoder":
        return
    hw = load_hardware().with_updates({"compute.encoding_s": s, "compute.d_c": d_c,
                                       "compute.n_crossbars": n_xbars})
    m = mapping.map(build(spec, seq_len=L, phase=phase, batch=batch), hw)
    ops, t = m.ops, m.totals
    assert t["macs"] == ops[C.MACS].sum() == t["model_macs"] + t["aux_macs"]
    assert t["sessions"] == ops[C.SESSIONS].sum() and t["xbar_cycles"] == ops[MC.CYCLES].sum()
    assert t["area_mm2"] == pytest.approx(sum(m.area_um2.values()) / 1e6)
    assert (ops[MC.XBARS] <= n_xbars).all() and (ops[MC.CYCLES] >= ops[MC.DIGITS]).all()


@settings(max_examples=25, deadline=None)
@given(hf_configs(), st.integers(1, 64))
def test_cycles_never_grow_with_more_duplication(kw, L):
    table = build(from_hf_config(config(**kw), "random"), seq_len=L)
    hw = load_hardware()
    cycles = [mapping.map(table, hw.with_updates({"compute.d_c": dc})).totals["xbar_cycles"]
              for dc in (1, 2, 4, 8, 16, 32, 64)]
    assert cycles == sorted(cycles, reverse=True)
