"""Typed specs: model shapes (from HF configs) and hardware (from YAML presets)."""

from xbarllm.spec.hardware import HardwareSpec, load_hardware
from xbarllm.spec.model import ModelSpec, load_model

__all__ = ["HardwareSpec", "ModelSpec", "load_hardware", "load_model"]
