"""Workload compiler: a model shape -> the table of F(X·Y) sub-operations (a pandas DataFrame).

The table is the one interface between the workload and every later stage. Its columns are
documented in `xbarllm.workload.columns`; model-level facts (parameter inventory, token counts)
travel in `table.attrs`.
"""

from __future__ import annotations

from dataclasses import astuple, fields
from typing import Literal

import numpy as np
import pandas as pd

from xbarllm.errors import XbarError
from xbarllm.spec.model import ModelSpec
from xbarllm.workload import columns as C
from xbarllm.workload.ops import Op, head, layer, norm

Phase = Literal["prefill", "decode"]
_OP_FIELDS = [f.name for f in fields(Op)]


def _stack(stack: str, n_layers: int, template: list[Op]) -> dict[str, np.ndarray]:
    """Replicate one layer's ops over `n_layers` layers as column arrays."""
    cols = list(zip(*(astuple(o) for o in template), strict=True))
    out = {name: np.tile(np.asarray(vals), n_layers) for name, vals in zip(_OP_FIELDS, cols, strict=True)}
    out[C.LAYER] = np.repeat(np.arange(n_layers), len(template))
    out[C.STACK] = np.full(n_layers * len(template), stack)
    return out


def _single(stack: str, index: int, ops: list[Op]) -> dict[str, np.ndarray]:
    return _stack(stack, 1, ops) | {C.LAYER: np.full(len(ops), index)}


def _plan(m: ModelSpec, phase: Phase, L: int, B: int, c: int, dec_len: int) -> list[dict[str, np.ndarray]]:
    """Column blocks in execution order: embeddings, stacks, final norm, head."""
    parts: list[dict[str, np.ndarray]] = []
    if m.family == "encoder":
        if m.embed_norm:
            parts.append(_single("enc", -1, norm(m, "ln_emb", B * L, "D1")))
        parts.append(_stack("enc", m.n_layers, layer(m, "enc", B, L, L, causal=False, cached=False)))
        return parts
    enc_len = 0
    if m.family == "encoder-decoder":
        enc_len = L
        if phase == "prefill":
            parts.append(_stack("enc", m.n_layers, layer(m, "enc", B, L, L, causal=False, cached=False)))
            parts.append(_single("enc", m.n_layers, norm(m, "ln_f", B * L, "D1")))
        n_dec = m.n_dec_layers
    else:
        n_dec = m.n_layers
        dec_len = L
    n, kv = (dec_len, dec_len) if phase == "prefill" else (1, c)
    tmpl = layer(m, "dec", B, n, kv, causal=phase == "prefill", cached=phase == "decode", enc_len=enc_len)
    parts.append(_stack("dec", n_dec, tmpl))
    parts.append(_single("dec", n_dec, [*norm(m, "ln_f", B * n, "D1"), head(m, B * n)]))
    return parts


def build(model: ModelSpec, seq_len: int = 256, phase: Phase = "prefill", batch: int = 1,
          context: int | None = None, *, act_bits: int = 8, weight_bits: int = 8,
          dec_len: int | None = None) -> pd.DataFrame:
    """The sub-operation table of one forward pass, one row per F(X·Y) per layer.

    prefill: `seq_len` tokens per sequence (causal self-attention for decoders; for an
    encoder-decoder, the encoder over `seq_len` tokens and the decoder over `dec_len`, default
    `seq_len`, teacher-forced). decode: one new token per sequence attending to `context` keys
    (its own included) through a KV cache; for an encoder-decoder, cross-attention over `seq_len`
    encoder tokens whose K/V are cached. Sizes in elements, bytes at the given bit widths.
    """
    if phase not in ("prefill", "decode"):
        raise XbarError(f"phase: '{phase}' is not prefill or decode")
    for name, v in (("seq_len", seq_len), ("batch", batch), ("act_bits", act_bits),
                    ("weight_bits", weight_bits)):
        if not isinstance(v, int) or v < 1:
            raise XbarError(f"{name}: must be a positive integer, got {v!r}")
    c = seq_len if context is None else context
    if not isinstance(c, int) or c < 1:
        raise XbarError(f"context: must be a positive integer, got {context!r}")
    dl = seq_len if dec_len is None else dec_len
    if phase == "decode" and model.family == "encoder":
        raise XbarError(f"phase: {model.name} is encoder-only and has no decode phase")
    longest = c if phase == "decode" else max(seq_len, dl)
    if model.max_positions and longest > model.max_positions:
        raise XbarError(f"seq_len: {longest} tokens exceed the {model.max_positions} learned "
                        f"positions of {model.name}")

    parts = _plan(model, phase, seq_len, batch, c, dl)
    df = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    df = df.rename(columns={"bias": C.BIAS_PARAMS, "sqrt_div": C.SQRT_DIV})
    _derive(df, act_bits, weight_bits)
    df = df[C.ALL]
    tokens = batch * (1 if phase == "decode" else (dl if model.family != "encoder" else seq_len))
    df.attrs.update(
        model=model.name, family=model.family, phase=phase, seq_len=seq_len, batch=batch,
        context=c if phase == "decode" else seq_len, dec_len=dl, act_bits=act_bits,
        weight_bits=weight_bits, tokens=tokens, d_model=model.d_model, head_dim=model.head_dim,
        kv_dim=model.n_kv_heads * model.head_dim,
        kv_layers=model.n_dec_layers if model.family == "encoder-decoder" else model.n_layers,
        params=param_inventory(model),
    )
    return df


def _derive(df: pd.DataFrame, act_bits: int, weight_bits: int) -> None:
    """Add the computed columns: sessions, exact MACs, parameters and bytes."""
    for col in (C.COUNT, C.M, C.K, C.N, C.CAUSAL_LEN, C.BIAS_PARAMS, C.SQRT_DIV):
        df[col] = df[col].astype(np.int64)
    count, M, K, N, L = (df[c].to_numpy() for c in (C.COUNT, C.M, C.K, C.N, C.CAUSAL_LEN))
    dense = count * M * K * N
    Ls = np.maximum(L, 1)
    # Causal rows compute only the lower triangle of the L×L token grid: L(L+1)/2 of L² cells.
    df[C.MACS] = np.where(L > 0, dense // (Ls * Ls) * (Ls * (Ls + 1) // 2), dense)
    df[C.SESSIONS] = count * N
    is_ws = (df[C.KIND] == "WS").to_numpy()
    df[C.WEIGHT_PARAMS] = np.where(is_ws, K * N, 0)
    df[C.WEIGHT_BYTES] = _bytes(df[C.WEIGHT_PARAMS].to_numpy(), weight_bits)
    y_is_act = ~is_ws & ~(df[C.Y_CACHE] == "ones").to_numpy()
    df[C.ACT_IN_BYTES] = _bytes(count * M * K + np.where(y_is_act, count * K * N, 0), act_bits)
    df[C.ACT_OUT_BYTES] = _bytes(count * M * N, act_bits)
    df[C.AUX] = df[C.AUX].astype(bool)


def _bytes(elements: np.ndarray, bits: int) -> np.ndarray:
    return -(-elements * bits // 8)


def param_inventory(model: ModelSpec) -> dict[str, int]:
    """Parameter counts by kind: matrix (WS weights), bias, norm, embedding, other, and total.

    Independent of phase and sequence length: counted from a one-token prefill plan.
    """
    parts = _plan(model, "prefill", 1, 1, 1, 1)
    kind = np.concatenate([p["kind"] for p in parts])
    K, N = (np.concatenate([p[k] for p in parts]).astype(np.int64) for k in ("K", "N"))
    n_norms = sum(int(np.char.endswith(p["op"].astype(str), ".meansq").sum()) for p in parts)
    stacks = 2 if model.family == "encoder-decoder" else 1
    inv = {
        "matrix": int((K * N)[kind == "WS"].sum()),
        "bias": int(sum(int(p["bias"].astype(np.int64).sum()) for p in parts)),
        "norm": n_norms * model.d_model * (2 if model.norm == "layernorm" else 1),
        "embedding": model.embedding_params,
        "other": model.relative_buckets * model.n_heads * stacks,  # T5 relative-position biases
    }
    inv["total"] = sum(inv.values())
    return inv
