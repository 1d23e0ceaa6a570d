"""Sub-operation templates for one layer: MHA (paper Table 2), FFN (Table 3), norms (Table 4).

Each function returns plain `Op` records for one layer; `build` replicates them over layers.
Cache names follow Fig. 10: a block reads its input from one of D1/D2 and writes the other;
attention temporaries use T1 (Q, then V), T2 (K/sqrt(dk), then R) and S (scores).
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarllm.spec.model import ModelSpec


@dataclass(frozen=True)
class Op:
    """One F(X·Y) sub-operation of one layer (see `columns` for the meaning of each field)."""

    block: str
    op: str
    kind: str
    count: int
    M: int
    K: int
    N: int
    F: str
    x_cache: str
    y_cache: str
    out_cache: str
    aux: bool = False
    causal_len: int = 0
    bias: int = 0
    sqrt_div: int = 0


def _f(*parts: str | None) -> str:
    """Join the element-wise steps of F, e.g. _f('+b', 'gelu') -> '+b·gelu'; 'none' if empty."""
    kept = [p for p in parts if p]
    return "·".join(kept) if kept else "none"


def ws(m: ModelSpec, block: str, op: str, rows: int, k: int, n: int, f: str | None,
       x: str, out: str, bias: bool | None = None) -> Op:
    """A weight-stationary product: `rows` activations times a K×N weight from the dense crossbar."""
    has_bias = m.bias if bias is None else bias
    return Op(block, op, "WS", 1, rows, k, n, _f("+b" if has_bias else None, f), x, "dense", out,
              bias=n if has_bias else 0)


def norm(m: ModelSpec, name: str, rows: int, x: str) -> list[Op]:
    """LayerNorm as mean (X·1) and mean-square (row·rowᵀ), Table 4; RMSNorm keeps only the latter.

    Both run one session per token (count = rows, M = 1); the sqrt/divide unit runs once per token.
    """
    d = m.d_model
    meansq = Op("norm", f"{name}.meansq", "NW", rows, 1, d, 1, "×1/m", x, x, "reg", aux=True,
                sqrt_div=rows)
    if m.norm == "rmsnorm":
        return [meansq]
    mean = Op("norm", f"{name}.mean", "NW", rows, 1, d, 1, "×1/m", x, "ones", "reg", aux=True)
    return [mean, meansq]


def attention(m: ModelSpec, block: str, batch: int, n_q: int, n_kv: int, *, causal: bool,
              project_kv: bool, kv_src: str, xin: str, xout: str) -> list[Op]:
    """The seven sub-operations of Table 2 for `n_q` new queries attending to `n_kv` keys.

    GQA: the g = heads/kv_heads query heads of a group share one K/V operand, so Q·Kᵀ and ·V run as
    batch×kv_heads instances of (g·n_q) rows. `project_kv` is False when K/V come from a cache
    (cross-attention while decoding); `kv_src` names where K/V are read from (T2/T1, kv or enc).
    """
    H, Hkv, hd, g, d = m.n_heads, m.n_kv_heads, m.head_dim, m.group, m.d_model
    rope = "rope" if m.position == "rope" and block == "mha" else None
    scale = "/sqrt(dk)" if m.qk_scale else None
    causal_len = n_q if causal else 0
    new_kv_rows = batch * (n_q if block == "mha" else n_kv)
    kv_in = xin if block == "mha" else "enc"
    k_y, v_y = ("T2", "T1") if kv_src == "fresh" else (kv_src, kv_src)
    ops = [ws(m, block, "q_proj", batch * n_q, d, H * hd, rope, xin, "T1")]
    if project_kv:
        ops += [ws(m, block, "k_proj", new_kv_rows, d, Hkv * hd, _f(rope, scale), kv_in, "T2"),
                ws(m, block, "v_proj", new_kv_rows, d, Hkv * hd, None, kv_in, "T1")]
    ops += [
        Op(block, "qk", "NW", batch * Hkv, g * n_q, hd, n_kv, "exp", "T1", k_y, "S",
           causal_len=causal_len),
        Op(block, "rowsum", "NW", 1, batch * H * n_q, n_kv, 1, "none", "S", "ones", "reg", aux=True,
           causal_len=causal_len),
        Op(block, "sv", "NW", batch * Hkv, g * n_q, n_kv, hd, "/rowsum", "S", v_y, "T2",
           causal_len=causal_len),
        ws(m, block, "o_proj", batch * n_q, H * hd, d, "+x", "T2", xout),
    ]
    return ops


def ffn(m: ModelSpec, rows: int, xin: str, mid: str, xout: str, residual: str = "+x") -> list[Op]:
    """Table 3: act(X·Wa)·Wb + X; gated FFNs (SwiGLU, GeGLU) add an up projection multiplied in F."""
    d, h, act = m.d_model, m.d_ff, m.activation
    if m.gated_ffn:
        return [ws(m, "ffn", "gate", rows, d, h, act, xin, mid),
                ws(m, "ffn", "up", rows, d, h, f"×{act}(gate)", xin, mid),
                ws(m, "ffn", "down", rows, h, d, residual, mid, xout)]
    return [ws(m, "ffn", "fc1", rows, d, h, act, xin, mid),
            ws(m, "ffn", "fc2", rows, h, d, residual, mid, xout)]


def layer(m: ModelSpec, stack: str, batch: int, n: int, kv: int, *, causal: bool, cached: bool,
          enc_len: int = 0) -> list[Op]:
    """All sub-operations of one layer in execution order.

    `n` new tokens attend to `kv` keys; `cached` means earlier keys come from a KV cache (decode);
    `enc_len` > 0 adds cross-attention over that many encoder tokens (T5 decoder layers).
    """
    rows = batch * n
    self_kv = "kv" if cached else "fresh"
    mha = attention(m, "mha", batch, n, kv, causal=causal, project_kv=True, kv_src=self_kv,
                    xin="D1", xout="D2")
    if m.norm_place == "post":  # BERT: Add&Norm after each block
        return (mha + norm(m, "ln_attn", rows, "D2") + ffn(m, rows, "D2", "D1", "D1")
                + norm(m, "ln_ffn", rows, "D1"))
    if m.norm_place == "parallel":  # Phi: one LN feeds attention and FFN; both add to the residual
        return (norm(m, "ln", rows, "D1") + mha
                + ffn(m, rows, "D1", "T1", "D1", residual="+attn+x"))
    ops = norm(m, "ln1", rows, "D1") + mha + norm(m, "ln2", rows, "D2")
    if enc_len:
        ops += attention(m, "xattn", batch, n, enc_len, causal=False, project_kv=not cached,
                         kv_src=self_kv, xin="D2", xout="D1")
        ops += norm(m, "ln3", rows, "D1") + ffn(m, rows, "D1", "D2", "D2")
    else:
        ops += ffn(m, rows, "D2", "D1", "D1")
    return ops


def head(m: ModelSpec, rows: int) -> Op:
    """The vocabulary projection of a language model (tied to the embeddings or not)."""
    return ws(m, "head", "lm_head", rows, m.d_model, m.vocab_size, None, "D1", "D2", bias=m.head_bias)
