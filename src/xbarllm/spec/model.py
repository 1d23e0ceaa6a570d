"""Transformer shapes, read through transformers' own config classes.

`load_model(name_or_path)` accepts a preset name (a config JSON shipped under `presets/models/`),
a path to any HF `config.json`, a model directory, or a `.gguf` file. The HF config is normalised
into a `ModelSpec`: the handful of shape facts every later stage needs.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from xbarllm.errors import XbarError, from_validation
from xbarllm.spec import presets

Family = Literal["encoder", "decoder", "encoder-decoder"]
Activation = Literal["relu", "gelu", "silu"]


class _Arch(BaseModel):
    """What a model_type's code does that its config does not say (read from the HF modelling code)."""

    family: Family
    norm: Literal["layernorm", "rmsnorm"]
    norm_place: Literal["post", "pre", "parallel"]  # post-LN (BERT), pre-LN, or one LN for attn+FFN (Phi)
    position: Literal["learned", "rope", "relative"]
    bias: bool  # linear layers carry biases
    gated_ffn: bool  # the FFN is act(gate)·up (SwiGLU family)
    embed_norm: bool = False  # LayerNorm right after the embeddings (BERT)
    qk_scale: bool = True  # scores are divided by sqrt(head_dim) (T5 does not)
    head_bias: bool = False  # the LM head has a bias (Phi)
    token_types: bool = False  # token-type embedding table (BERT)


_ARCHS: dict[str, _Arch] = {
    "bert": _Arch(family="encoder", norm="layernorm", norm_place="post", position="learned",
                  bias=True, gated_ffn=False, embed_norm=True, token_types=True),
    "gpt2": _Arch(family="decoder", norm="layernorm", norm_place="pre", position="learned",
                  bias=True, gated_ffn=False),
    "phi": _Arch(family="decoder", norm="layernorm", norm_place="parallel", position="rope",
                 bias=True, gated_ffn=False, head_bias=True),
    "llama": _Arch(family="decoder", norm="rmsnorm", norm_place="pre", position="rope",
                   bias=False, gated_ffn=True),
    "mistral": _Arch(family="decoder", norm="rmsnorm", norm_place="pre", position="rope",
                     bias=False, gated_ffn=True),
    "t5": _Arch(family="encoder-decoder", norm="rmsnorm", norm_place="pre", position="relative",
                bias=False, gated_ffn=False, qk_scale=False),
}

_ACT_NAMES: dict[str, Activation] = {
    "relu": "relu", "gelu": "gelu", "gelu_new": "gelu", "gelu_fast": "gelu",
    "gelu_pytorch_tanh": "gelu", "gelu_python": "gelu", "silu": "silu", "swish": "silu",
}


class ModelSpec(BaseModel):
    """Shape of a transformer: everything the workload compiler reads. Sizes are element counts."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    name: str
    model_type: str
    family: Family
    n_layers: PositiveInt = Field(description="layers of the (encoder-only or decoder-only) stack; "
                                              "encoder layers for encoder-decoder models")
    n_dec_layers: int = Field(0, ge=0, description="decoder layers of an encoder-decoder model")
    d_model: PositiveInt
    n_heads: PositiveInt
    n_kv_heads: PositiveInt
    head_dim: PositiveInt
    d_ff: PositiveInt
    vocab_size: PositiveInt
    max_positions: int = Field(0, ge=0, description="rows of a learned position table (0: none)")
    type_vocab_size: int = Field(0, ge=0)
    relative_buckets: int = Field(0, ge=0, description="T5 relative-attention buckets")
    activation: Activation
    gated_ffn: bool
    norm: Literal["layernorm", "rmsnorm"]
    norm_place: Literal["post", "pre", "parallel"]
    position: Literal["learned", "rope", "relative"]
    rope_fraction: float = Field(0.0, ge=0.0, le=1.0)
    bias: bool
    head_bias: bool
    embed_norm: bool
    qk_scale: bool
    tied_embeddings: bool

    @model_validator(mode="after")
    def _check_heads(self) -> ModelSpec:
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"num_key_value_heads ({self.n_kv_heads}) does not divide "
                             f"num_attention_heads ({self.n_heads})")
        if self.family == "encoder-decoder" and self.n_dec_layers == 0:
            raise ValueError("an encoder-decoder model needs num_decoder_layers > 0")
        return self

    @property
    def group(self) -> int:
        """Query heads per K/V head (1 for multi-head attention, >1 for GQA)."""
        return self.n_heads // self.n_kv_heads

    @property
    def ffn_name(self) -> str:
        """FFN flavour: relu/gelu, or swiglu/geglu/reglu for gated FFNs."""
        if not self.gated_ffn:
            return self.activation
        return {"silu": "swiglu", "gelu": "geglu", "relu": "reglu"}[self.activation]

    @property
    def has_head(self) -> bool:
        """Whether the model ends in a vocabulary projection (language models do; encoders do not)."""
        return self.family != "encoder"

    @property
    def embedding_params(self) -> int:
        """Parameters in lookup tables: token, position and token-type tables.

        A tied token table is the LM head's weight matrix, so it is counted there, not here.
        """
        token = 0 if self.has_head and self.tied_embeddings else self.vocab_size
        return self.d_model * (token + self.max_positions + self.type_vocab_size)


def _raw_first(cfg: Any, *names: str) -> Any:
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return None


def from_hf_config(cfg: Any, name: str) -> ModelSpec:
    """Normalise a transformers `PretrainedConfig` into a ModelSpec; errors name the config field."""
    arch = _ARCHS.get(cfg.model_type)
    if arch is None:
        raise XbarError(f"{name}: model_type '{cfg.model_type}' is not supported "
                        f"(supported: {', '.join(sorted(_ARCHS))})")
    d, n_heads = cfg.hidden_size, cfg.num_attention_heads
    for field, v in (("hidden_size", d), ("num_attention_heads", n_heads)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise XbarError(f"{name}: {field}: must be a positive integer, got {v!r}")
    explicit_hd = getattr(cfg, "d_kv", None) if cfg.model_type == "t5" else None
    head_dim = explicit_hd or getattr(cfg, "head_dim", None)
    if not head_dim or (explicit_hd is None and head_dim * n_heads != d):
        # head_dim is derived as d_model / heads: the heads must divide d_model.
        if d % n_heads:
            raise XbarError(f"{name}: num_attention_heads ({n_heads}) does not divide "
                            f"hidden_size ({d})")
        head_dim = d // n_heads
    act_raw = _raw_first(cfg, "dense_act_fn", "hidden_act", "activation_function")
    act = _ACT_NAMES.get(str(act_raw))
    if act is None:
        raise XbarError(f"{name}: activation '{act_raw}' is not supported "
                        f"(supported: {', '.join(sorted(_ACT_NAMES))})")
    d_ff = _raw_first(cfg, "intermediate_size", "d_ff", "n_inner")
    rope = getattr(cfg, "rope_parameters", None) or {}
    try:
        return ModelSpec(
            name=name,
            model_type=cfg.model_type,
            family=arch.family,
            n_layers=cfg.num_hidden_layers,
            n_dec_layers=(cfg.num_decoder_layers or 0) if arch.family == "encoder-decoder" else 0,
            d_model=d,
            n_heads=n_heads,
            n_kv_heads=getattr(cfg, "num_key_value_heads", None) or n_heads,
            head_dim=head_dim,
            d_ff=d_ff if d_ff is not None else 4 * d,
            vocab_size=cfg.vocab_size,
            max_positions=cfg.max_position_embeddings if arch.position == "learned" else 0,
            type_vocab_size=getattr(cfg, "type_vocab_size", 0) if arch.token_types else 0,
            relative_buckets=getattr(cfg, "relative_attention_num_buckets", 0)
            if arch.position == "relative" else 0,
            activation=act,
            gated_ffn=arch.gated_ffn or bool(getattr(cfg, "is_gated_act", False)),
            norm=arch.norm,
            norm_place=arch.norm_place,
            position=arch.position,
            rope_fraction=float(rope.get("partial_rotary_factor", 1.0)) if arch.position == "rope" else 0.0,
            bias=arch.bias,
            head_bias=arch.head_bias,
            embed_norm=arch.embed_norm,
            qk_scale=arch.qk_scale,
            tied_embeddings=bool(cfg.tie_word_embeddings),
        )
    except ValidationError as e:
        raise from_validation(name, e, _HF_FIELD) from None


# Our field names -> the config attribute a user wrote, for error messages.
_HF_FIELD = {"n_layers": "num_hidden_layers", "n_dec_layers": "num_decoder_layers",
             "d_model": "hidden_size", "n_heads": "num_attention_heads",
             "n_kv_heads": "num_key_value_heads", "d_ff": "intermediate_size"}


def model_presets() -> list[str]:
    """Names of the model presets shipped with the package."""
    return presets.names("models", ".json")


@cache
def _preset_dict(name: str) -> dict[str, Any]:
    text = presets.preset_text("models", name, ".json")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def _hf_config_from_path(path: Path) -> Any:
    from transformers import AutoConfig

    try:
        if path.suffix == ".gguf":
            return AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
        if path.is_file():
            return AutoConfig.for_model(**_read_json(path))
        return AutoConfig.from_pretrained(str(path))
    except XbarError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise XbarError(f"{path}: not a readable transformers config ({str(e).splitlines()[0]})") from None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        d = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise XbarError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict) or "model_type" not in d:
        raise XbarError(f"{path}: model_type: missing (a transformers config.json names its model_type)")
    return d


def hf_config(name_or_path: str | Path) -> Any:
    """The transformers config of a preset name, a config.json, a model directory or a .gguf file."""
    from transformers import AutoConfig

    text = str(name_or_path)
    if text in model_presets():
        return AutoConfig.for_model(**_preset_dict(text))
    path = Path(text)
    if not path.exists():
        raise XbarError(f"unknown model '{text}': not a file, and not a preset "
                        f"(presets: {', '.join(model_presets())})")
    return _hf_config_from_path(path)


def load_model(name_or_path: str | Path) -> ModelSpec:
    """Load a model shape from a preset name, a config.json, a model directory or a .gguf file."""
    text = str(name_or_path)
    return from_hf_config(hf_config(text), text if text in model_presets() else str(Path(text)))
