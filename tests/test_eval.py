"""Real models through the crossbar path: hooks, exactness in-model, a 20-pair STS-B smoke run, CLI."""

import json
import math

import pandas as pd
import pytest
import torch

from xbarllm import XbarError
from xbarllm.cli import main
from xbarllm.eval import data
from xbarllm.eval.models import minilm, smollm2
from xbarllm.eval.run import grid, measure, parse_sweep
from xbarllm.eval.tasks import embed, perplexity, spearman
from xbarllm.sim import SimConfig
from xbarllm.sim.config import load_sim_config, sim_presets
from xbarllm.sim.modules import XbarLinear, XbarNorm, install

SENTS = ["A man is playing a guitar.", "Stocks fell sharply on Monday.", "The cat sits on the mat."]


@pytest.fixture(scope="module")
def reference():
    tok, model = minilm()
    return tok, embed(tok, model, SENTS)


def _embed_with(cfg, tok):
    _, model = minilm()
    chip = install(model, cfg)
    chip.calibrate(lambda: embed(tok, model, data.stsb("dev")[0][:16]))
    return embed(tok, model, SENTS), model, chip


def test_fp32_mode_reproduces_the_model_exactly(reference):
    tok, ref = reference
    out, model, _ = _embed_with(SimConfig(mode="fp32"), tok)
    assert torch.allclose(out, ref, atol=1e-5)
    assert any(isinstance(m, XbarLinear) for m in model.modules())
    assert any(isinstance(m, XbarNorm) for m in model.modules())
    assert model.config._attn_implementation == "xbar"


def test_stages_keep_the_others_fp32(reference):
    tok, ref = reference
    out, model, _ = _embed_with(SimConfig(mode="int8", stages="norm"), tok)
    assert not any(isinstance(m, XbarLinear) for m in model.modules())
    assert any(isinstance(m, XbarNorm) for m in model.modules())
    assert model.config._attn_implementation != "xbar"
    assert not torch.allclose(out, ref, atol=1e-6)  # the INT8 norm statistics do change the numbers
    with pytest.raises(ValueError, match="unknown stage 'ffn'"):
        SimConfig(stages="linear+ffn")


@pytest.mark.parametrize("mode", ["xbar", "xbar_stat"])
def test_ideal_crossbar_equals_int8_digital_in_the_model(reference, mode):
    tok, _ = reference
    int8, _, _ = _embed_with(SimConfig(mode="int8"), tok)
    ideal, _, _ = _embed_with(SimConfig(mode=mode, adc_bits=None), tok)
    assert torch.allclose(int8, ideal, atol=1e-5)


def test_calibration_sets_a_full_scale_per_site_and_digit(reference):
    tok, _ = reference
    _, model, chip = _embed_with(SimConfig(), tok)
    n_linear = sum(isinstance(m, XbarLinear) for m in model.modules())
    assert len(chip.fullscale) >= n_linear and all(len(v) == 3 for v in chip.fullscale.values())


def test_stsb_smoke_20_pairs_within_005_of_fp32():
    fp32 = measure("stsb", SimConfig(mode="fp32"), limit=20)["value"]
    seen = []
    noisy = measure("stsb", SimConfig(rtn=0.05), limit=20, progress=lambda d, t: seen.append((d, t)))["value"]
    assert abs(noisy - fp32) / 100 <= 0.05
    assert seen == [(1, 2), (2, 2)]  # one batch of 20 sentences a side
    stat = measure("stsb", SimConfig(mode="xbar_stat", rtn=0.05), limit=20)["value"]
    assert abs(stat - fp32) / 100 <= 0.05


def test_sst2_probe_is_fitted_once_and_the_fp32_mode_scores_as_the_fp32_probe():
    from xbarllm.eval import tasks

    tasks._fp32_probe.cache_clear()

    def fp32(model, calibrate):
        install(model, SimConfig(mode="fp32")).calibrate(calibrate)

    first = tasks.run_sst2(fp32, limit=40, train_rows=200)
    second = tasks.run_sst2(fp32, limit=40, train_rows=200)
    assert tasks._fp32_probe.cache_info().misses == 1 and tasks._fp32_probe.cache_info().hits == 1
    assert first == second and first[0] == first[1]  # fp32 embeddings through the hooks: the probe's own score
    tasks._fp32_probe.cache_clear()


def test_perplexity_reports_each_window_and_matches_one_pass():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (41,))
    seen = []
    ppl = perplexity(model, ids, window=16, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]  # windows of 16, 16 and 9 tokens
    with torch.no_grad():
        nll = sum(float(model(c.unsqueeze(0), labels=c.unsqueeze(0)).loss) * (len(c) - 1) for c in ids.split(16))
    assert ppl == pytest.approx(math.exp(nll / 38), rel=1e-5)


def test_spearman_ranks():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_data_files_parse_with_their_quirks():
    a, b, gold = data.stsb("test")
    assert len(a) == len(b) == len(gold) == 1379 and all(0 <= g <= 5 for g in gold)
    text, label = data.sst2("dev")
    assert len(text) == 872 and sum(label) == 444
    assert data.wikitext2().lstrip("\n").startswith(" = Robert Boulter = ")  # the recipe keeps blank lines


def test_corrupt_and_missing_data_name_the_file(tmp_path):
    (tmp_path / "stsb").mkdir()
    (tmp_path / "stsb" / "sts-test.csv").write_text("only\tthree\tfields\n")
    with pytest.raises(XbarError, match="sts-test.csv: line 1"):
        data.stsb("test", tmp_path)
    with pytest.raises(XbarError, match="dev.tsv: data file not found"):
        data.sst2("dev", tmp_path)


def test_sweep_grid():
    points = list(grid(SimConfig(), parse_sweep(["noise=0,0.05", "bits_per_cell=1,2"])))
    assert len(points) == 4 and points[1][1].rtn == 0.0 and points[1][1].bits_per_cell == 2
    assert points[2][1].dense_noise == 0.05
    with pytest.raises(XbarError, match="frob"):
        parse_sweep(["frob=1"])
    with pytest.raises(XbarError, match="--sweep"):
        list(grid(SimConfig(), parse_sweep(["bits_per_cell=0"])))


@pytest.mark.parametrize("args,needle", [
    (["simulate", "all-minilm-l6-v2", "--task", "nope"], "unknown task"),
    (["simulate", "all-minilm-l6-v2", "--noise", "-1"], "--noise"),
    (["simulate", "all-minilm-l6-v2", "--S", "0"], "--S"),
    (["simulate", "gpt2"], "runs on all-minilm-l6-v2"),
    (["simulate", "all-minilm-l6-v2", "--sweep", "frob=1"], "frob"),
    (["simulate", "all-minilm-l6-v2", "--workers", "0"], "--workers"),
    (["simulate", "all-minilm-l6-v2", "--limit", "-3"], "--limit: stsb needs at least 2 pairs, got -3"),
    (["simulate", "all-minilm-l6-v2", "--task", "sst2", "--limit", "0"], "--limit: sst2 needs at least 1"),
    (["simulate", "smollm2-135m", "--task", "wikitext2", "--limit", "1"], "--limit: wikitext2 needs at least 2"),
    (["simulate", "all-minilm-l6-v2", "--sweep", "tune_steps=0,10"], "tune_steps"),
    (["simulate", "smollm2-135m", "--task", "wikitext2", "--sweep", "mode=analog", "--sweep", "stuck_rate=0.01"],
     "stuck_rate must be 0"),
    (["simulate", "all-minilm-l6-v2", "--mode", "fast"], "--mode"),
    (["simulate", "all-minilm-l6-v2", "--config", "nope"], "unknown sim config 'nope'"),
    (["simulate", "all-minilm-l6-v2", "--mode", "xbar_stat", "--sweep", "adc_clip_quantile=0.99"],
     "xbar_stat does not model clipping; adc_clip_quantile must be 1"),
])
def test_simulate_bad_input(capsys, args, needle):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_simulate_keeps_the_rows_measured_before_a_failure(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_measure(task, cfg, limit, progress):
        calls.append(cfg.rtn)
        if len(calls) == 2:
            raise XbarError("second configuration failed")
        return {"task": task, "metric": "spearman", "value": 1.0, "seconds": 0.0, "exp_overflow_calls": 0,
                "exp_calls": 0, "adc_over_range": 0.0}

    monkeypatch.setattr("xbarllm.eval.run.measure", fake_measure)
    path = tmp_path / "sweep.csv"
    code = main(["simulate", "all-minilm-l6-v2", "--sweep", "noise=0,0.05,0.25", "--out", str(path)])
    assert code == 2 and "second configuration failed" in capsys.readouterr().err
    assert calls == [0.0, 0.05]
    assert len(path.read_text().splitlines()) == 2  # header + the first configuration's row


def _recorded(monkeypatch):
    """Replace `measure` by a recorder of the configs it is given."""
    run = []
    monkeypatch.setattr("xbarllm.eval.run.measure", lambda task, cfg, limit, progress: run.append(cfg) or {
        "task": task, "metric": "m", "value": 1.0, "seconds": 0.0, "exp_overflow_calls": 0, "exp_calls": 0,
        "adc_over_range": 0.0})
    return run


def test_simulate_mode_sets_the_crossbar_rows(monkeypatch, capsys):
    run = _recorded(monkeypatch)
    assert main(["simulate", "all-minilm-l6-v2", "--mode", "xbar_stat", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["noise"]) for r in rows] == [("fp32", "-"), ("int8", "-"), ("xbar_stat", "0"),
                                                       ("xbar_stat", "0.05")]
    assert [(c.mode, c.rtn) for c in run] == [("fp32", 0.05), ("int8", 0.05), ("xbar_stat", 0.0), ("xbar_stat", 0.05)]


def test_simulate_runs_the_papers_chip_unless_a_config_says_otherwise(monkeypatch, capsys, tmp_path):
    run = _recorded(monkeypatch)
    assert main(["simulate", "all-minilm-l6-v2", "--json"]) == 0
    assert run[3] == load_sim_config("paper") and run[2] == run[3].model_copy(update={"rtn": 0.0})
    assert {c.act_bits for c in run} == {8} and run[3].adc_policy == "calibrated" and run[3].rtn == 0.05
    # A preset, then flags over it; the reference rows run untuned, the digital row at the chip's activation bits.
    run.clear()
    capsys.readouterr()
    args = ["simulate", "smollm2-135m", "--task", "wikitext2", "--config", "smollm2-rtn-target", "--noise", "0.02",
            "--seed", "3", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["mode"], r["noise"]) for r in rows] == [("fp32", "-"), ("int11", "-"), ("xbar", "0"), ("xbar", "0.02")]
    assert [(c.mode, c.tune_steps, c.rtn, c.seed) for c in run] == [
        ("fp32", 0, 0.02, 3), ("int8", 0, 0.02, 3), ("xbar", 100, 0.0, 3), ("xbar", 100, 0.02, 3)]
    assert {(c.act_bits, c.copies, c.stages) for c in run} == {(11, 8, "linear+attention+norm")}
    # A YAML file of SimConfig fields is a config too.
    path = tmp_path / "chip.yaml"
    path.write_text("adc_policy: calibrated_tile\nadc_bits: 6\n")
    run.clear()
    assert main(["simulate", "all-minilm-l6-v2", "--config", str(path), "--sweep", "seed=0,1"]) == 0
    assert [(c.adc_policy, c.adc_bits, c.seed) for c in run] == [("calibrated_tile", 6, 0), ("calibrated_tile", 6, 1)]


def test_simulate_sweeps_whole_configs(monkeypatch, capsys):
    run = _recorded(monkeypatch)
    args = ["simulate", "all-minilm-l6-v2", "--sweep", "config=paper,tile-q999", "--sweep", "rtn=0,0.05", "--seed",
            "2", "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["config"], r["rtn"]) for r in rows] == [("paper", 0.0), ("paper", 0.05), ("tile-q999", 0.0),
                                                      ("tile-q999", 0.05)]
    assert [(c.adc_policy, c.act_bits, c.rtn, c.seed) for c in run] == [
        ("calibrated", 8, 0.0, 2), ("calibrated", 8, 0.05, 2), ("calibrated_tile", 11, 0.0, 2),
        ("calibrated_tile", 11, 0.05, 2)]
    assert main(["simulate", "all-minilm-l6-v2", "--sweep", "config=paper,nope"]) == 2
    assert "unknown sim config 'nope'" in capsys.readouterr().err


def test_every_sim_preset_loads():
    assert {"paper", "act11-reconvert", "tile-q999", "smollm2-rtn-target"} <= set(sim_presets())
    assert len({load_sim_config(n) for n in sim_presets()}) == len(sim_presets())


@pytest.mark.parametrize("text,needle", [
    ("adc_polcy: calibrated\n", "chip.yaml: adc_polcy: unknown field"),
    ("act_bits: 30\n", "chip.yaml: act_bits: Input should be less than or equal to 16"),
    ("act_bits: [11\n", "chip.yaml: not valid YAML at line"),
    ("mode: fp32\n", "sets mode fp32"),
])
def test_simulate_bad_config_file(tmp_path, capsys, text, needle):
    path = tmp_path / "chip.yaml"
    path.write_text(text)
    assert main(["simulate", "all-minilm-l6-v2", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_simulate_sweep_writes_a_tidy_table(tmp_path, capsys):
    path = tmp_path / "sweep.csv"
    code = main(["simulate", "all-minilm-l6-v2", "--limit", "8", "--sweep", "noise=0,0.05",
                 "--out", str(path), "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and [r["noise"] for r in rows] == [0.0, 0.05] and path.is_file()
    assert pd.read_csv(path)["noise"].dtype == float  # swept values are typed, so the table filters by number
    # Two one-thread worker processes measure the same configurations to the same values, rows in sweep order.
    code = main(["simulate", "all-minilm-l6-v2", "--limit", "8", "--sweep", "noise=0,0.05", "--workers", "2",
                 "--out", str(path), "--json"])
    side = json.loads(capsys.readouterr().out)
    assert code == 0 and [(r["noise"], r["value"]) for r in side] == [(r["noise"], r["value"]) for r in rows]
    assert len(path.read_text().splitlines()) == 3


def test_smollm2_cache_holds_the_dequantised_model(tmp_path, monkeypatch):
    # The first load dequantises the GGUF and stores it; the second reads the store: same tokens, same weights,
    # tied head, same logits. A damaged store is a one-line error naming it.
    monkeypatch.setenv("XBARLLM_CACHE", str(tmp_path))
    tok, model = smollm2()
    (cache,) = (tmp_path / "models").iterdir()
    tok2, model2 = smollm2()
    text = "The tower is 324 metres tall, about the same height as an 81-storey building."
    ids = tok(text, return_tensors="pt").input_ids
    assert torch.equal(ids, tok2(text, return_tensors="pt").input_ids)
    a, b = model.state_dict(), model2.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert model2.lm_head.weight.data_ptr() == model2.model.embed_tokens.weight.data_ptr()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, model2(ids).logits)
    (cache / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(XbarError, match="unreadable model cache"):
        smollm2()
