"""xbarllm: area, energy, latency and accuracy of transformers on memristor-crossbar hardware."""

from xbarllm.errors import XbarError

__all__ = ["XbarError"]
__version__ = "0.1.0"
