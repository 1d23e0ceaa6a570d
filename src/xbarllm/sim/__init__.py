"""Functional simulator: bit-faithful numerics of the crossbar path, applied to real HF models."""

from xbarllm.sim.config import SimConfig
from xbarllm.sim.crossbar import xbar_matmul

__all__ = ["SimConfig", "xbar_matmul"]
