"""The sub-operation table: exact MACs and parameters against transformers, and its invariants."""

import numpy as np
import pandas as pd
import pytest
from conftest import config, hf_forward_flops, hf_param_count
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import hf_configs

from xbarllm import XbarError
from xbarllm.spec.model import _preset_dict, from_hf_config, load_model, model_presets
from xbarllm.workload import build
from xbarllm.workload import columns as C


def test_bert_base_macs_equal_the_analytical_count():
    L, d, h, layers = 256, 768, 3072, 12
    weights_per_layer = 4 * d * d + 2 * d * h
    attention_per_layer = 2 * L * L * d  # Q·Kᵀ and scores·V over all 12 heads
    expected = layers * (L * weights_per_layer + attention_per_layer)
    t = build(load_model("bert-base"), seq_len=L)
    assert t.loc[~t[C.AUX], C.MACS].sum() == expected == 22_951_231_488


def test_bert_base_follows_tables_2_to_4():
    t = build(load_model("bert-base"), seq_len=128)
    layer0 = t[t[C.LAYER] == 0]
    assert list(layer0[C.OP]) == ["q_proj", "k_proj", "v_proj", "qk", "rowsum", "sv", "o_proj",
                                  "ln_attn.mean", "ln_attn.meansq", "fc1", "fc2",
                                  "ln_ffn.mean", "ln_ffn.meansq"]
    by = layer0.set_index(C.OP)
    assert by.loc["qk", C.F] == "exp" and by.loc["sv", C.F] == "/rowsum"
    assert by.loc["k_proj", C.F].endswith("/sqrt(dk)")
    assert by.loc["rowsum", C.SESSIONS] == 1  # one session: EXP(S)·1 (Table 2, row 5)
    assert by.loc["qk", C.SESSIONS] == 12 * 128  # n sessions per head
    assert by.loc["sv", C.SESSIONS] == 768  # m sessions
    assert by.loc["ln_attn.mean", C.SESSIONS] == 128  # one session per token (Table 4)
    assert by.loc["ln_attn.meansq", C.SQRT_DIV] == 128
    assert (layer0[C.KIND] == "NW").sum() == 2 + 1 + 4  # qk, sv, rowsum + 4 norm statistics
    assert set(layer0[C.X_CACHE]) <= {"D1", "D2", "T1", "T2", "S"}


@pytest.mark.parametrize("name", model_presets())
def test_parameter_inventory_equals_transformers(name):
    cfg = config(**_preset_dict(name))
    assert build(load_model(name), seq_len=8).attrs["params"]["total"] == hf_param_count(cfg)


@pytest.mark.parametrize("name", ["bert-base", "gpt2", "smollm2-135m", "phi-1.5", "t5-3b"])
def test_every_product_matches_torch_flop_counter(name):
    # Eager attention computes the full L×L score box, masked or not; compare against that box.
    L = 24
    t = build(load_model(name), seq_len=L)
    model_rows = t[~t[C.AUX]]
    box = (model_rows[C.COUNT] * model_rows[C.M] * model_rows[C.K] * model_rows[C.N]).sum()
    assert hf_forward_flops(config(**_preset_dict(name)), L) == 2 * box


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hf_configs(), st.integers(1, 12), st.integers(1, 2))
def test_random_configs_match_torch_flops_and_params(kw, L, batch):
    cfg = config(**kw)
    spec = from_hf_config(cfg, "random")
    t = build(spec, seq_len=L, batch=batch)
    rows = t[~t[C.AUX]]
    box = (rows[C.COUNT] * rows[C.M] * rows[C.K] * rows[C.N]).sum()
    assert hf_forward_flops(config(**kw), L, batch) == 2 * box
    assert t.attrs["params"]["total"] == hf_param_count(config(**kw))


def _key(t: pd.DataFrame) -> pd.Series:
    return t.set_index([C.STACK, C.LAYER, C.BLOCK, C.OP])[C.MACS]


@settings(max_examples=60, deadline=None)
@given(hf_configs(), st.integers(2, 40), st.integers(1, 3))
def test_decode_at_context_c_equals_the_last_row_of_prefill(kw, c, batch):
    spec = from_hf_config(config(**kw), "random")
    if spec.family == "encoder":
        return
    enc_len = 7  # encoder tokens of an encoder-decoder: fixed across the three builds
    if spec.family == "encoder-decoder":
        full = build(spec, seq_len=enc_len, dec_len=c, batch=batch)
        prev = build(spec, seq_len=enc_len, dec_len=c - 1, batch=batch)
        dec = build(spec, seq_len=enc_len, phase="decode", context=c, batch=batch)
    else:
        full, prev = build(spec, seq_len=c, batch=batch), build(spec, seq_len=c - 1, batch=batch)
        dec = build(spec, phase="decode", context=c, batch=batch)
    last_row = _key(full).sub(_key(prev), fill_value=0)
    last_row = last_row[last_row != 0]
    got = _key(dec)
    pd.testing.assert_series_equal(got.sort_index(), last_row.sort_index(), check_dtype=False,
                                   check_names=False)


@settings(max_examples=40, deadline=None)
@given(hf_configs(), st.integers(1, 64), st.sampled_from(["prefill", "decode"]), st.integers(1, 4))
def test_derived_columns_are_consistent(kw, L, phase, batch):
    spec = from_hf_config(config(**kw), "random")
    if phase == "decode" and spec.family == "encoder":
        return
    t = build(spec, seq_len=L, phase=phase, batch=batch, context=L)
    assert list(t.columns) == C.ALL
    box = t[C.COUNT] * t[C.M] * t[C.K] * t[C.N]
    dense = t[C.CAUSAL_LEN] == 0
    assert (t[C.MACS] <= box).all() and (t.loc[dense, C.MACS] == box[dense]).all()
    assert (t[C.SESSIONS] == t[C.COUNT] * t[C.N]).all()
    ws = t[C.KIND] == "WS"
    assert (t.loc[ws, C.WEIGHT_PARAMS] == t.loc[ws, C.K] * t.loc[ws, C.N]).all()
    assert (t.loc[~ws, C.WEIGHT_BYTES] == 0).all()
    # Weight bytes per layer do not depend on batch or tokens: weights are read once per op.
    if phase == "prefill":
        again = build(spec, seq_len=L + 3, phase=phase, batch=batch + 1)
        assert t[C.WEIGHT_BYTES].sum() == again[C.WEIGHT_BYTES].sum()


def test_gqa_shares_kv_heads():
    spec = load_model("smollm2-135m")  # 9 query heads, 3 K/V heads
    t = build(spec, phase="decode", context=100)
    qk = t[(t[C.OP] == "qk") & (t[C.LAYER] == 0)].iloc[0]
    assert (qk[C.COUNT], qk[C.M], qk[C.K], qk[C.N]) == (3, 3, 64, 100)
    kp = t[(t[C.OP] == "k_proj") & (t[C.LAYER] == 0)].iloc[0]
    assert kp[C.N] == 3 * 64 and "rope" in kp[C.F]
    assert set(t.loc[t[C.BLOCK] == "ffn", C.OP]) == {"gate", "up", "down"}
    assert (t.loc[t[C.BLOCK] == "norm", C.OP].str.endswith(".meansq")).all()  # RMSNorm: no mean


def test_t5_has_cross_attention_and_caches_its_kv_when_decoding():
    spec = load_model("t5-3b")
    pre = build(spec, seq_len=32, dec_len=8)
    assert set(pre[C.STACK]) == {"enc", "dec"}
    x = pre[(pre[C.BLOCK] == "xattn") & (pre[C.LAYER] == 0)].set_index(C.OP)
    assert x.loc["k_proj", C.M] == 32 and x.loc["q_proj", C.M] == 8 and x.loc["qk", C.N] == 32
    dec = build(spec, seq_len=32, phase="decode", context=9)
    xd = dec[(dec[C.BLOCK] == "xattn") & (dec[C.LAYER] == 0)]
    assert "k_proj" not in set(xd[C.OP]) and set(dec[C.STACK]) == {"dec"}
    assert not pre[C.F].str.contains("sqrt").any()  # T5 does not scale its scores


def test_causal_prefill_counts_the_triangle():
    t = build(load_model("gpt2"), seq_len=10)
    qk = t[(t[C.OP] == "qk") & (t[C.LAYER] == 0)].iloc[0]
    assert qk[C.CAUSAL_LEN] == 10 and qk[C.MACS] == 12 * 64 * 10 * 11 // 2
    enc = build(load_model("bert-base"), seq_len=10)
    assert (enc[C.CAUSAL_LEN] == 0).all()


@pytest.mark.parametrize("kwargs,field", [
    (dict(seq_len=0), "seq_len"), (dict(batch=-1), "batch"), (dict(phase="train"), "phase"),
    (dict(phase="decode", context=0), "context"), (dict(seq_len=513), "seq_len"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(XbarError, match=field):
        build(load_model("bert-base"), **kwargs)


def test_table_is_plain_in_memory_dataframe():
    t = build(load_model("gpt2"), seq_len=16)
    assert isinstance(t, pd.DataFrame) and np.issubdtype(t[C.MACS].dtype, np.integer)
    assert t.attrs["params"]["total"] == 124_439_808
