"""The CLI: tables, JSON, output files, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from xbarllm.cli import main


def run(args, capsys):
    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_map_prints_blocks_and_totals(capsys):
    code, out, _ = run(["map", "bert-base", "--seq-len", "128"], capsys)
    assert code == 0
    for word in ("Per block", "mha", "ffn", "norm", "Totals", "dense_crossbars", "Caches", "Area"):
        assert word in out


def test_json_is_one_object_with_totals_and_rows(capsys):
    code, out, _ = run(["map", "smollm2-135m", "--phase", "decode", "--context", "512", "--json"], capsys)
    obj = json.loads(out)
    assert code == 0 and obj["phase"] == "decode" and obj["context"] == 512
    assert obj["totals"]["macs"] == sum(r["macs"] for r in obj["ops"])
    assert {c["cache"] for c in obj["caches"]} == {"D1", "D2", "T1", "T2", "S", "KV"}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_out_file_round_trips(tmp_path, capsys, suffix):
    path = tmp_path / f"ops{suffix}"
    code, _, _ = run(["map", "gpt2", "--seq-len", "64", "--out", str(path), "--json"], capsys)
    assert code == 0
    df = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    assert len(df) == 12 * (2 + 7 + 2 + 2) + 2 + 1 and df["macs"].sum() > 0  # 12 layers, ln_f, head
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left


@pytest.mark.parametrize("args,needle", [
    (["map", "no-such-model"], "unknown model"),
    (["map", "bert-base", "--hw", "no-such-hw"], "unknown hardware"),
    (["map", "bert-base", "--bogus"], "--bogus"),
    (["map", "bert-base", "--phase", "sideways"], "--phase"),
    (["map", "bert-base", "--seq-len", "abc"], "--seq-len"),
    (["map", "bert-base", "--seq-len", "0"], "seq_len"),
    (["map", "bert-base", "--phase", "decode"], "encoder-only"),
    (["map", "bert-base", "--out", "x.txt"], ".csv or .parquet"),
    (["map"], "model"),
    (["nonsense"], "nonsense"),
    (["estimate", "bert-base", "--set", "compute.copies"], "--set: 'compute.copies': expected PATH=VALUE"),
    (["estimate", "bert-base", "--set", "compute.copiez=2"], "compute.copiez: unknown field"),
    (["estimate", "bert-base", "--set", "compute.copies=0"], "compute.copies"),
    (["estimate", "gpt2", "--digital", "head"], "chip.digital_mac_units is 0"),
    (["map", "gpt2", "--digital", "hed", "--set", "chip.digital_mac_units=8"], "no block 'hed' in gpt2"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, needle):
    code, _out, err = run(args, capsys)
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_failed_run_leaves_an_existing_output_untouched(tmp_path, capsys):
    path = tmp_path / "ops.csv"
    path.write_text("precious\n")
    bad_hw = tmp_path / "hw.yaml"
    bad_hw.write_text("name: broken\n")
    code, _, err = run(["map", "bert-base", "--hw", str(bad_hw), "--out", str(path)], capsys)
    assert code == 2 and "hw.yaml" in err
    assert path.read_text() == "precious\n"


def test_console_script_exit_code_and_help():
    exe = [sys.executable, "-c", "from xbarllm.cli import run; run()"]
    bad = subprocess.run([*exe, "map", "bert-base", "--bogus"], capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "Traceback" not in bad.stderr
    for sub in ([], ["map"], ["presets"]):
        ok = subprocess.run(exe + sub + ["--help"], capture_output=True, text=True, check=False)
        assert ok.returncode == 0 and "Usage" in ok.stdout


def test_set_and_digital_reach_the_cost_model(capsys):
    def totals(*extra):
        code, out, _ = run(["estimate", "smollm2-135m", "--seq-len", "64", "--json", *extra], capsys)
        assert code == 0
        obj = json.loads(out)
        return obj["totals"], {r["block"]: r for r in obj["per_block"]}

    base, base_blocks = totals()
    copies, _ = totals("--set", "compute.copies=2")
    head, blocks = totals("--set", "chip.digital_mac_units=64", "--digital", "head")
    assert copies["energy_adc_mj"] == pytest.approx(2 * base["energy_adc_mj"])
    assert base["energy_digital_mac_mj"] == 0 < head["energy_digital_mac_mj"] <= blocks["head"]["energy_pj"] * 1e-9
    assert all(blocks[b] == base_blocks[b] for b in ("mha", "ffn", "norm"))
