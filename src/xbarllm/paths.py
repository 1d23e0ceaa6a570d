"""Where xbarllm keeps files it can rebuild (tuned weights, flash files, dequantised models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$XBARLLM_CACHE, or ~/.cache/xbarllm."""
    return Path(os.environ.get("XBARLLM_CACHE", Path.home() / ".cache" / "xbarllm"))
