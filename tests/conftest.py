"""Shared test helpers: build the transformers model a spec describes, on the meta device."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, AutoModelForCausalLM, BertModel, T5ForConditionalGeneration


def meta_model(cfg):
    """The HF model of a config with meta tensors (no memory, no weights): shapes only."""
    cfg._attn_implementation = "eager"  # attention as plain matmuls, so the FLOP counter sees them
    with torch.device("meta"):
        if cfg.model_type == "bert":
            return BertModel(cfg, add_pooling_layer=False)  # the pooler is not part of the encoder
        if cfg.model_type == "t5":
            return T5ForConditionalGeneration(cfg)
        return AutoModelForCausalLM.from_config(cfg)


def hf_forward_flops(cfg, seq_len: int, batch: int = 1) -> int:
    """FLOPs torch counts for one forward pass of the HF model over seq_len tokens."""
    model = meta_model(cfg)
    ids = torch.zeros(batch, seq_len, dtype=torch.long, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        if cfg.model_type == "t5":
            model(input_ids=ids, decoder_input_ids=ids)
        else:
            model(input_ids=ids)
    return counter.get_total_flops()


def hf_param_count(cfg) -> int:
    return sum(p.numel() for p in meta_model(cfg).parameters())


def config(**kw):
    return AutoConfig.for_model(**kw)
