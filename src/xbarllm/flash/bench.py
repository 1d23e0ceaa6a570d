"""Measurements of the flash engine: per-token latency breakdown per configuration (the paper's Tables 2–3)
and the perplexity cost and recall/precision of each sparsity setting."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch

from xbarllm.flash.convert import EVAL_TOKENS
from xbarllm.flash.engine import Engine, EngineConfig, predictors
from xbarllm.flash.fileformat import open_flash
from xbarllm.flash.sparsity import ffn_inputs, ffn_parts, masked_ffn, quantile_tau, window_union

log = logging.getLogger(__name__)


def standard_configs(base: EngineConfig) -> dict[str, EngineConfig]:
    """The four rows of the paper's ablation, at the DRAM budget, window, threads and chunk size of `base`."""
    return {"naive": replace(base, mode="naive"),
            "hybrid": replace(base, mode="hybrid"),
            "predictor+window": replace(base, mode="sparse", bundled=False),
            "+bundling": replace(base, mode="sparse", bundled=True)}


def prompt_ids(path: Path, tokens: int, seed: int = 0) -> torch.Tensor:
    """The first `tokens` WikiText-2 test tokens (SmolLM2 tokenizer), or seeded random ids for random-weight files."""
    f = open_flash(path, verify=False)
    if f.header.get("random_weights"):
        return torch.randint(0, int(f.config["vocab_size"]), (tokens,), generator=torch.Generator().manual_seed(seed))
    from xbarllm.eval import data
    from xbarllm.eval.models import smollm2

    tok, _ = smollm2()
    return tok(data.wikitext2(), return_tensors="pt").input_ids[0][:tokens]


def latency(path: Path, configs: dict[str, EngineConfig], prompt: torch.Tensor, new_tokens: int,
            progress: Callable[[str, int], None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary per configuration, stats per token) of generating `new_tokens` after `prompt` from flash.

    Summary columns are means over the decode tokens, in ms and bytes; `bytes_vs_naive` divides by the
    bytes a naive token reads (every FFN bundle); `dram_fraction` divides the engine's weight bytes by the
    fp32 model size; `capacity_fraction` is the rows of each layer's store over the layer's neurons."""
    rows, tokens = [], []
    for label, cfg in configs.items():
        eng = Engine(path, cfg, verify=False)
        try:
            tick = (lambda i, lb=label: progress(lb, i)) if progress else None
            _, st = eng.generate(prompt, new_tokens, on_token=tick)
            dram = eng.dram_bytes()
            lay, model_bytes, mode, cap = eng.layout, eng.file.model_bytes, eng.reader.mode, eng.capacity
        finally:
            eng.close()
        dec = st[st.phase == "decode"]
        dense = lay.n_layers * lay.layer_bytes
        rows.append({"config": label, "io_ms": dec.io_ms.mean(), "mm_ms": dec.mm_ms.mean(),
                     "compute_ms": dec.compute_ms.mean(), "total_ms": dec.total_ms.mean(),
                     "bytes_per_token": dec.bytes_read.mean(), "bytes_vs_naive": dec.bytes_read.mean() / dense,
                     "reads_per_token": dec.reads.mean(),
                     "io_gb_per_s": dec.bytes_read.sum() / max(dec.io_ms.sum(), 1e-9) / 1e6,
                     "dram_mib": dram["total"] / 2**20,
                     "dram_fraction": dram["total"] / model_bytes, "budget_fraction": cfg.budget,
                     "held_per_layer": dec.held_per_layer.mean(), "capacity_fraction": cap / lay.d_ff,
                     "io_mode": mode})
        tokens.append(st.assign(config=label))
    summary = pd.DataFrame(rows)
    naive = summary.loc[summary.config == "naive", "total_ms"]
    if len(naive):
        summary["speedup_vs_naive"] = float(naive.iloc[0]) / summary.total_ms
    return summary, pd.concat(tokens, ignore_index=True)


@torch.no_grad()
def sparsity_quality(path: Path, tokens: int = EVAL_TOKENS, window: int = 4,
                     progress: Callable[[str, int], None] | None = None) -> pd.DataFrame:
    """Perplexity (first `tokens` WikiText-2 test tokens, 1024-token windows) and recall/precision against the
    ground truth (top-density |SiLU(g)·u|) for: dense; the truth itself; (a) |SiLU(g)| threshold; (b) the file's
    predictor; (b) with the window union of the last `window` tokens. Thresholds come from the first window.

    `recall`/`precision` are measured inside the sparsified model (errors compound over layers);
    `recall_dense_inputs`/`precision_dense_inputs` on the dense model's FFN inputs of the first window."""
    from xbarllm.eval import data
    from xbarllm.eval.models import smollm2
    from xbarllm.eval.tasks import perplexity

    f = open_flash(path, verify=False)
    if f.header.get("random_weights"):
        raise ValueError("sparsity quality needs the real model, not a random-weight file")
    density = f.header["sparsity"]["density"]
    tok, model = smollm2()
    ids = tok(data.wikitext2(), return_tensors="pt").input_ids[0][:tokens]
    layers = model.model.layers
    preds, tau_pred = predictors(f)
    xs = ffn_inputs(model, ids[:1024])
    tau_true, tau_gate = [], []
    for i, layer in enumerate(layers):
        g, c = ffn_parts(layer.mlp, xs[i])
        tau_true.append(quantile_tau(c, density))
        tau_gate.append(quantile_tau(g, density))
    counts: dict[str, list[float]] = {}

    def selector(name: str, pick, win: int = 1):
        counts[name] = [0.0, 0.0, 0.0]  # hits, truth, picked

        def sel(i, mlp, x):
            g, c = ffn_parts(mlp, x)
            s, truth = window_union(pick(i, x, g, c), win), c > tau_true[i]
            counts[name][0] += float((s & truth).sum())
            counts[name][1] += float(truth.sum())
            counts[name][2] += float(s.sum())
            return s
        return sel

    def pred(i, x, g, c):
        return preds[i](x) > tau_pred[i]

    settings = {"truth": lambda i, x, g, c: c > tau_true[i],
                f"truth + window {window}": (lambda i, x, g, c: c > tau_true[i], window),
                "(a) gate threshold": lambda i, x, g, c: g > tau_gate[i],
                "(b) predictor": pred,
                f"(b) predictor + window {window}": (pred, window)}
    dense = perplexity(model, ids)
    rows = [{"setting": "dense", "density": 1.0, "recall": 1.0, "precision": density, "recall_dense_inputs": 1.0,
             "precision_dense_inputs": density, "perplexity": dense, "ppl_increase": 0.0}]
    for n, (name, how) in enumerate(settings.items()):
        pick, win = how if isinstance(how, tuple) else (how, 1)
        open_loop = selector(name, pick, win)
        for i, layer in enumerate(layers):
            open_loop(i, layer.mlp, xs[i])
        hits0, truth0, picked0 = counts[name]
        with masked_ffn(model, selector(name, pick, win)):
            ppl = perplexity(model, ids)
        hits, truth, picked = counts[name]
        rows.append({"setting": name, "density": picked / (len(ids) * len(layers) * layers[0].mlp.intermediate_size),
                     "recall": hits / truth, "precision": hits / picked, "recall_dense_inputs": hits0 / truth0,
                     "precision_dense_inputs": hits0 / picked0, "perplexity": ppl, "ppl_increase": ppl / dense - 1})
        if progress:
            progress(name, n + 1)
    return pd.DataFrame(rows)


@torch.no_grad()
def oracle_curve(densities: list[float], tokens: int = EVAL_TOKENS) -> pd.DataFrame:
    """Perplexity of SmolLM2 (first `tokens` WikiText-2 test tokens) when each layer keeps only its ground-truth
    neurons (top `density` |SiLU(g)·u|, thresholds from the first 1024 tokens), per density: the bound that no
    predictor can beat at that density. Columns: density, perplexity, ppl_increase (vs dense)."""
    from xbarllm.eval import data
    from xbarllm.eval.models import smollm2
    from xbarllm.eval.tasks import perplexity

    tok, model = smollm2()
    ids = tok(data.wikitext2(), return_tensors="pt").input_ids[0][:tokens]
    layers = model.model.layers
    scores = [ffn_parts(layer.mlp, x)[1] for layer, x in zip(layers, ffn_inputs(model, ids[:1024]), strict=True)]
    dense = perplexity(model, ids)
    rows = []
    for density in densities:
        taus = [quantile_tau(c, density) for c in scores]
        with masked_ffn(model, lambda i, mlp, x, taus=taus: ffn_parts(mlp, x)[1] > taus[i]):
            ppl = perplexity(model, ids)
        rows.append({"density": density, "perplexity": ppl, "ppl_increase": ppl / dense - 1})
    return pd.DataFrame(rows)
