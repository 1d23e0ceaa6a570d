"""LLM in a flash (Alizadeh et al. 2023): generation with FFN neurons streamed from a file under a DRAM budget.

`convert` writes the flash file, `Engine` generates from it, `bench` measures it, `io.probe` measures the disk.
"""

from __future__ import annotations

from pathlib import Path

from xbarllm.paths import cache_root


def default_path(model: str = "smollm2-135m") -> Path:
    """Where `xbarllm flash convert` puts a model's flash file: $XBARLLM_CACHE or ~/.cache/xbarllm."""
    return cache_root() / f"{model}.xflash"
