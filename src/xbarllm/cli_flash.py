"""`xbarllm flash …`: the LLM-in-a-flash engine on the command line (thin layer over xbarllm.flash)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from xbarllm.errors import XbarError

flash_app = typer.Typer(no_args_is_help=True, help="Run SmolLM2 with FFN neurons streamed from flash (LLM in a flash).")


def _console():
    from xbarllm.cli import err, out

    return out, err


def _default_file() -> Path:
    from xbarllm.flash import default_path

    return default_path()


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=_console()[1], transient=True)


FileOpt = Annotated[Path | None, typer.Option("--file", help="flash file (default: the converted SmolLM2)")]
Budget = Annotated[float, typer.Option("--dram-budget", help="≤ 1: fraction of the fp32 model size; > 1: bytes")]
Window = Annotated[int, typer.Option("--window", help="keep the neurons of the last k tokens")]
Threads = Annotated[int, typer.Option("--threads", help="parallel reader threads")]
Chunk = Annotated[int, typer.Option("--chunk-kib", help="largest single read, KiB (multiple of 0.5)")]


def _engine_config(mode: str, budget: float, window: int, threads: int, chunk_kib: int, bundled: bool = True):
    from xbarllm.flash.engine import EngineConfig

    if mode not in ("naive", "hybrid", "sparse"):
        raise XbarError(f"--mode: unknown mode '{mode}' (naive, hybrid, sparse)")
    if budget <= 0:
        raise XbarError(f"--dram-budget: must be > 0, got {budget}")
    if threads < 1 or chunk_kib < 1:
        raise XbarError("--threads and --chunk-kib must be ≥ 1")
    return EngineConfig(mode=mode, budget=budget, window=window, threads=threads, chunk_bytes=chunk_kib * 1024,
                        bundled=bundled)


@flash_app.command("convert")
def convert_cmd(
    model: Annotated[str, typer.Option("--model", help="smollm2-135m, or a Llama-style preset/config.json "
                                       "(random weights, for speed only)")] = "smollm2-135m",
    out_file: Annotated[Path | None, typer.Option("--out", help="flash file to write")] = None,
    density: Annotated[float, typer.Option("--density", help="target fraction of FFN neurons per token")] = 0.05,
    rank: Annotated[int, typer.Option("--rank", help="rank of each layer's predictor")] = 32,
    train_tokens: Annotated[int, typer.Option("--train-tokens", help="WikiText-2 tokens to train on")] = 16384,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write one flash file: resident weights (safetensors), bundled FFN neurons, predictors, checksums."""
    from xbarllm.flash.convert import convert

    out, _ = _console()
    path = out_file or _default_file() if model == "smollm2-135m" else out_file
    if path is None:
        raise XbarError("--out: required for a model other than smollm2-135m")
    path.parent.mkdir(parents=True, exist_ok=True)
    bar, jobs = _bar(), {}

    def tick(stage: str, done: int, total: int) -> None:
        if not jobs:
            bar.start()  # only once work has begun, so early errors stay one line
        if stage not in jobs:
            jobs[stage] = bar.add_task(stage, total=total)
        bar.update(jobs[stage], completed=done)
    try:
        meta = convert(path, model, density=density, rank=rank, train_tokens=train_tokens, seed=seed, progress=tick)
    finally:
        if jobs:
            bar.stop()
    sp = meta["sparsity"]
    msg = f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, model {meta['model_bytes'] / 2**20:.1f} MiB fp32)"
    if sp.get("recall"):
        n = len(sp["recall"])
        msg += (f"; predictor rank {rank} on {sp['train_tokens']} tokens, held-out mean recall "
                f"{sum(sp['recall']) / n:.3f}, precision {sum(sp['precision']) / n:.3f}, "
                f"picked density {sum(sp['picked_density']) / n:.3f} (target {density})")
    out.print(msg, highlight=False)


@flash_app.command("generate")
def generate_cmd(
    prompt: Annotated[str, typer.Option("--prompt", help="prompt text")],
    file: FileOpt = None, budget: Budget = 0.5, window: Window = 4, threads: Threads = 8, chunk_kib: Chunk = 256,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens")] = 32,
    mode: Annotated[str, typer.Option("--mode", help="naive, hybrid or sparse")] = "sparse",
    bundling: Annotated[bool, typer.Option("--bundling/--no-bundling", help="one read per neuron")] = True,
) -> None:
    """Greedy generation with FFN weights read from flash; prints the text and the per-token breakdown."""
    from xbarllm.eval.models import smollm2
    from xbarllm.flash.engine import Engine

    out, _ = _console()
    cfg = _engine_config(mode, budget, window, threads, chunk_kib, bundling)
    if max_new_tokens < 1:
        raise XbarError(f"--max-new-tokens: must be ≥ 1, got {max_new_tokens}")
    eng = Engine(file or _default_file(), cfg)
    try:
        if eng.file.header.get("random_weights"):
            raise XbarError(f"{eng.file.path}: random weights; generate text with the converted SmolLM2")
        tok, _ = smollm2()
        ids = tok(prompt, return_tensors="pt").input_ids[0]
        new, st = eng.generate(ids, max_new_tokens)
        dram = eng.dram_bytes()
    finally:
        eng.close()
    out.print(prompt + tok.decode(new), highlight=False, markup=False)
    dec = st[st.phase == "decode"]
    out.print(f"mode {mode}, I/O {eng.reader.mode}: {dec.total_ms.mean():.1f} ms/token (I/O {dec.io_ms.mean():.1f}, "
              f"memory management {dec.mm_ms.mean():.1f}, compute {dec.compute_ms.mean():.1f}); "
              f"{dec.bytes_read.mean() / 2**20:.2f} MiB read/token; DRAM {dram['total'] / 2**20:.1f} MiB of "
              f"budget {eng.budget_bytes / 2**20:.1f} MiB", highlight=False)


_SHOWN = {"config": "config", "io_ms": "I/O ms", "mm_ms": "mem ms", "compute_ms": "compute ms", "total_ms": "ms",
          "mib_per_token": "MiB read", "bytes_vs_naive": "vs naive", "io_gb_per_s": "GB/s",
          "dram_fraction": "DRAM/model", "capacity_fraction": "store/layer", "speedup_vs_naive": "speedup"}


@flash_app.command("bench")
def bench_cmd(
    file: FileOpt = None, budget: Budget = 0.5, window: Window = 4, threads: Threads = 8, chunk_kib: Chunk = 256,
    prompt_tokens: Annotated[int, typer.Option("--prompt-tokens", help="WikiText-2 prompt length")] = 128,
    new_tokens: Annotated[int, typer.Option("--new-tokens", help="generated tokens per configuration")] = 16,
    ppl_tokens: Annotated[int, typer.Option("--ppl-tokens", help="WikiText-2 tokens for perplexity (0: skip)")] = 8192,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write flash_latency/tokens/sparsity .csv here")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Naive vs hybrid vs predictor+window vs +bundling: per-token latency split, bytes, DRAM; and perplexity."""
    from xbarllm.cli import _table, write_table_atomic
    from xbarllm.flash import bench

    out, _ = _console()
    path = file or _default_file()
    base = _engine_config("sparse", budget, window, threads, chunk_kib)
    if prompt_tokens < 1 or new_tokens < 1 or ppl_tokens < 0:
        raise XbarError("--prompt-tokens and --new-tokens must be ≥ 1, --ppl-tokens ≥ 0")
    configs = bench.standard_configs(base)
    prompt = bench.prompt_ids(path, prompt_tokens)
    with _bar() as bar:
        job = bar.add_task("tokens", total=len(configs) * (new_tokens + 1))
        summary, tokens = bench.latency(path, configs, prompt, new_tokens, lambda *_: bar.advance(job))
        quality = None
        if ppl_tokens and not bench.open_flash(path, verify=False).header.get("random_weights"):
            job2 = bar.add_task("perplexity", total=6)
            quality = bench.sparsity_quality(path, ppl_tokens, window, lambda *_: bar.advance(job2))
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_table_atomic(summary, out_dir / "flash_latency.csv")
        write_table_atomic(tokens, out_dir / "flash_tokens.csv")
        if quality is not None:
            write_table_atomic(quality, out_dir / "flash_sparsity.csv")
    if as_json:
        print(json.dumps({"latency": summary.to_dict("records"),
                          "sparsity": None if quality is None else quality.to_dict("records")}))
        return
    title = f"{path.name}: per-token means over {new_tokens} generated tokens ({summary.io_mode[0]} reads)"
    shown = summary.assign(mib_per_token=summary.bytes_per_token / 2**20)[list(_SHOWN)].rename(columns=_SHOWN)
    out.print(_table(title, shown.round(3).to_dict("records")))
    if quality is not None:
        out.print(_table(f"sparsity on the first {ppl_tokens} WikiText-2 tokens", quality.round(4).to_dict("records")))


@flash_app.command("probe-io")
def probe_io_cmd(
    file: Annotated[Path | None, typer.Option("--file", help="file to read (default: a scratch file)")] = None,
    mib: Annotated[int, typer.Option("--mib", help="size of the scratch file, MiB")] = 512,
    chunks: Annotated[str, typer.Option("--chunks", help="chunk sizes, KiB")] = "4,8,16,32,64,128,256,1024",
    threads: Annotated[str, typer.Option("--threads", help="thread counts")] = "1,2,4,8,16,32",
) -> None:
    """Random-read throughput vs chunk size and threads (cold, O_DIRECT) and the fitted I/O latency model."""
    from xbarllm.cli import _table
    from xbarllm.flash.io import fit_latency, probe

    out, _ = _console()
    try:
        sizes = [int(float(c) * 1024) for c in chunks.split(",")]
        counts = [int(t) for t in threads.split(",")]
    except ValueError:
        raise XbarError("--chunks and --threads: comma-separated numbers") from None
    if len(set(sizes)) < 2 or min(sizes) < 512 or any(s % 512 for s in sizes) or min(counts) < 1:
        raise XbarError("--chunks: at least two sizes, multiples of 0.5 KiB; --threads: ≥ 1")
    scratch = None
    if file is None:
        folder = _default_file().parent
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, suffix=".probe")
        scratch = file = Path(name)
        with os.fdopen(fd, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(1 << 20))
    elif not file.is_file():
        raise XbarError(f"{file}: no such file")
    try:
        with _bar() as bar:
            bar.add_task("probing", total=None)
            rows = probe(file, sizes, counts)
    finally:
        if scratch:
            scratch.unlink(missing_ok=True)
    model = fit_latency(rows)
    for r in rows:
        r["model_gb_per_s"] = model.gb_per_s_at(r["chunk_bytes"], int(r["threads"]))
    shown = [{"chunk KiB": r["chunk_bytes"] / 1024, "threads": r["threads"], "reads": r["reads"],
              "GB/s": round(r["gb_per_s"], 3), "us/read": round(r["us_per_read"], 1),
              "model GB/s": round(r["model_gb_per_s"], 3)} for r in rows]
    out.print(_table(f"cold random reads of {file.name} ({rows[0]['mode']})", shown))
    out.print(f"fitted: one read = {model.latency_us:.1f} us + bytes / {model.gb_per_s:.2f} GB/s per thread; "
              f"ceilings {model.max_gb_per_s:.2f} GB/s and {model.max_iops:,.0f} reads/s", highlight=False)
