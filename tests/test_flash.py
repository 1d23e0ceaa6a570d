"""The flash engine: file format and its checks, the DRAM store, the budget, and equality with the dense model."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xbarllm.cli import main
from xbarllm.errors import XbarError
from xbarllm.flash import sparsity
from xbarllm.flash.convert import PRED, write_model
from xbarllm.flash.engine import Engine, EngineConfig
from xbarllm.flash.fileformat import open_flash
from xbarllm.flash.io import Reader
from xbarllm.flash.store import NeuronStore

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 3,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 97, "max_position_embeddings": 128,
        "tie_word_embeddings": True}


def _tiny_model():
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    d = dict(TINY)
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(d.pop("model_type"), **d)).eval()


def _predictors(hf, tau: float) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(hf.config.num_hidden_layers):
        p = sparsity.LowRankPredictor(hf.config.hidden_size, hf.config.intermediate_size, 8)
        out.update({f"{PRED}.{i}.{k}": v.detach().clone() for k, v in p.state_dict().items()})
    out[f"{PRED}.tau"] = torch.full((hf.config.num_hidden_layers,), tau)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(HF model, flash file whose predictors select every neuron)."""
    hf = _tiny_model()
    path = tmp_path_factory.mktemp("flash") / "tiny.xflash"
    write_model(path, hf, _predictors(hf, float("-inf")), {"random_weights": True, "sparsity": {"density": 1.0}})
    return hf, path


def test_file_round_trip(tiny):
    hf, path = tiny
    f = open_flash(path)
    assert torch.equal(f.resident["model.embed_tokens.weight"], hf.model.embed_tokens.weight)
    lay, mlp = f.layout, hf.model.layers[2].mlp
    with Reader(path, threads=2) as r:
        from xbarllm.flash.io import aligned_floats
        mm, buf = aligned_floats(1, lay.bundle_bytes // 4)
        r.read([(lay.bundle_offset(2, 17), memoryview(mm)[:lay.bundle_bytes])])
    p, d = lay.part_bytes // 4, lay.d_model
    assert torch.equal(buf[0, :d], mlp.gate_proj.weight[17])
    assert torch.equal(buf[0, p:p + d], mlp.up_proj.weight[17])
    assert torch.equal(buf[0, 2 * p:2 * p + d], mlp.down_proj.weight[:, 17])
    assert f.model_bytes == 4 * sum(t.numel() for t in hf.parameters())  # tied head counted once


def _damaged(tiny, tmp_path, how: str):
    data = bytearray(tiny[1].read_bytes())
    f = open_flash(tiny[1], verify=False)
    if how == "flip":
        data[f.layout.bundle_offset(1, 5) + 3] ^= 0xFF
    elif how == "truncate":
        data = data[: len(data) - 4096]
    elif how == "magic":
        data[0:8] = b"NOTFLASH"
    elif how == "header":
        data[20:30] = b"\xff" * 10
    bad = tmp_path / f"{how}.xflash"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize(("how", "says"), [("flip", "layer 1 fails its checksum"), ("truncate", "truncated"),
                                           ("magic", "bad magic"), ("header", "corrupt header")])
def test_damaged_file_fails_before_generation(tiny, tmp_path, capsys, how, says):
    bad = _damaged(tiny, tmp_path, how)
    with pytest.raises(XbarError, match=says):
        Engine(bad, EngineConfig(mode="naive", budget=1.0))
    assert main(["flash", "generate", "--prompt", "x", "--file", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad.name) in err and len(err.splitlines()) <= 2  # one message (rich may wrap a long path)


@pytest.mark.parametrize("cfg", [EngineConfig(mode="naive", budget=1.0), EngineConfig(mode="hybrid", budget=0.8),
                                 EngineConfig(mode="sparse", budget=1.0, window=2, bundled=False),
                                 EngineConfig(mode="sparse", budget=1.0, threads=1, chunk_bytes=4096, direct=False)])
def test_engine_equals_dense_model(tiny, cfg):
    """Every mode computes the dense model exactly when the predictor keeps every neuron."""
    hf, path = tiny
    ids = torch.tensor([3, 14, 15, 92, 65])
    eng = Engine(path, cfg)
    try:
        new, stats = eng.generate(ids, 6)
        assert eng.dram_bytes()["total"] <= eng.budget_bytes
    finally:
        eng.close()
    with torch.no_grad():
        ref = hf.generate(ids[None], max_new_tokens=6, do_sample=False, pad_token_id=0)[0, len(ids):]
    assert new.tolist() == ref.tolist()
    assert (stats.bytes_read > 0).all()


def test_sparse_reads_only_new_neurons_and_respects_budget(tmp_path):
    hf = _tiny_model()
    path = tmp_path / "sparse.xflash"
    write_model(path, hf, _predictors(hf, 0.5), {"random_weights": True, "sparsity": {"density": 0.3}})
    for budget in (0.7, 0.8, 0.9):
        eng = Engine(path, EngineConfig(mode="sparse", budget=budget, window=3))
        try:
            _, st = eng.generate(torch.tensor([1, 2, 3]), 8)
            lay = eng.layout
            assert eng.dram_bytes()["total"] <= eng.budget_bytes
            dec = st[st.phase == "decode"]
            assert (dec.bytes_read == dec.neurons_loaded * lay.bundle_bytes).all()
            assert (dec.held_per_layer <= eng.capacity).all()
            assert dec.bytes_read.sum() < len(dec) * lay.n_layers * lay.layer_bytes
        finally:
            eng.close()
    with pytest.raises(XbarError, match="too small"):
        Engine(path, EngineConfig(mode="sparse", budget=0.2))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 39), max_size=12), st.integers(0, 2**31 - 1)), max_size=12))
def test_store_keeps_pointers_and_rows_consistent(ops):
    store = NeuronStore(capacity=16, d_ff=40, d=4, part=128)
    for add, seed in ops:
        drop = torch.rand(40, generator=torch.Generator().manual_seed(seed)) < 0.4
        store.delete(drop & store.held())
        new = torch.tensor(sorted(set(add) - set(store.ptr[:store.used].tolist())), dtype=torch.long)
        new = new[: store.capacity - store.used]
        for row, n in zip(store.reserve(new), new.tolist(), strict=True):
            store.rows[row] = float(n)  # stands in for the neuron's bundle
        held = store.ptr[:store.used]
        assert len(set(held.tolist())) == store.used
        assert torch.equal(store.slot[held], torch.arange(store.used))
        assert int(store.held().sum()) == store.used
        assert torch.equal(store.rows[:store.used, 0], held.float())


def test_window_union():
    m = torch.zeros(5, 3, dtype=torch.bool)
    m[0, 0] = m[3, 1] = True
    u = sparsity.window_union(m, 2)
    assert u[:, 0].tolist() == [True, True, False, False, False]
    assert u[:, 1].tolist() == [False, False, False, True, True]


def test_bad_flags_exit_2(tiny, capsys):
    path = str(tiny[1])
    assert main(["flash", "bench", "--file", path, "--dram-budget", "-1"]) == 2
    assert main(["flash", "generate", "--prompt", "x", "--file", path, "--mode", "fast"]) == 2
    assert main(["flash", "convert", "--model", "bert-base", "--out", str(tiny[1].parent / "b.xflash")]) == 2
    assert main(["flash", "probe-io", "--chunks", "0.3,4"]) == 2
    assert not (tiny[1].parent / "b.xflash").exists()
    errs = capsys.readouterr().err.strip().splitlines()
    assert all(e.startswith("error:") for e in errs) and len(errs) == 4, errs


def test_bench_latency_table(tiny):
    from xbarllm.flash.bench import latency, standard_configs

    summary, tokens = latency(tiny[1], standard_configs(EngineConfig(budget=1.0)), torch.tensor([5, 6, 7]), 3)
    assert summary.config.tolist() == ["naive", "hybrid", "predictor+window", "+bundling"]
    assert summary.loc[0, "bytes_vs_naive"] == 1.0
    assert (summary.dram_fraction <= 1.0).all()
    cap = summary.set_index("config").capacity_fraction
    assert cap["naive"] == 0 and 0 < cap["hybrid"] <= 1 and 0 < cap["+bundling"] <= 1
    assert (summary.held_per_layer <= summary.capacity_fraction * TINY["intermediate_size"]).all()
    assert len(tokens) == 4 * 4
    json.dumps(summary.to_dict("records"))


def test_cli_convert_random_and_bench(tmp_path, capsys):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    path = tmp_path / "r.xflash"
    assert main(["flash", "convert", "--model", str(cfg), "--out", str(path), "--density", "0.2", "--rank", "4"]) == 0
    assert open_flash(path).header["random_weights"] is True
    assert main(["flash", "bench", "--file", str(path), "--dram-budget", "0.8", "--prompt-tokens", "4",
                 "--new-tokens", "2", "--out", str(tmp_path / "res"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.splitlines()[-1])["latency"]
    assert [r["config"] for r in rows] == ["naive", "hybrid", "predictor+window", "+bundling"]
    assert all(r["dram_fraction"] <= 0.8 for r in rows)
    assert {p.name for p in (tmp_path / "res").iterdir()} == {"flash_latency.csv", "flash_tokens.csv"}
