"""The flash weight file: one file per model, with a JSON header, a safetensors blob and bundled FFN neurons.

Layout (all offsets in bytes)::

    0        magic b"XBFLASH1", u64 little-endian header length, header JSON, zero padding to HEADER_BYTES
    HEADER   resident blob (safetensors: embeddings, attention, norms, predictors), padded to ALIGN
    layer l  d_ff bundles of `bundle_bytes`; bundle i = [gate row i | up row i | down column i], each part
             padded to a multiple of BLOCK so that every part can be read with O_DIRECT

The header holds the HF config, shapes, dtype, and a CRC-32 of the resident blob and of every layer.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xbarllm.errors import XbarError

MAGIC = b"XBFLASH1"
HEADER_BYTES = 256 * 1024
BLOCK = 512  # O_DIRECT transfer granularity (logical block size) for part sizes and read lengths
ALIGN = 4096  # start of every region
FORMAT = 1


def _up(n: int, to: int) -> int:
    return -(-n // to) * to


@dataclass(frozen=True)
class Layout:
    """Shapes and byte offsets of the bundled FFN regions."""

    d_model: int
    d_ff: int
    n_layers: int
    layer_offsets: tuple[int, ...]

    @property
    def part_bytes(self) -> int:
        """Bytes of one gate row, up row or down column (fp32, padded to BLOCK)."""
        return _up(self.d_model * 4, BLOCK)

    @property
    def bundle_bytes(self) -> int:
        return 3 * self.part_bytes

    @property
    def layer_bytes(self) -> int:
        return self.d_ff * self.bundle_bytes

    def bundle_offset(self, layer: int, neuron: int) -> int:
        return self.layer_offsets[layer] + neuron * self.bundle_bytes


@dataclass(frozen=True)
class FlashFile:
    """An opened, checked flash file: header, layout and the resident tensors."""

    path: Path
    header: dict[str, Any]
    layout: Layout
    resident: dict[str, torch.Tensor]

    @property
    def config(self) -> dict[str, Any]:
        return self.header["config"]

    @property
    def model_bytes(self) -> int:
        """fp32 bytes of the model's weights without padding or predictors (the base of budget fractions)."""
        return int(self.header["model_bytes"])


def bundle_matrix(gate: torch.Tensor, up: torch.Tensor, down: torch.Tensor, part_bytes: int) -> np.ndarray:
    """(d_ff, 3·part) fp32 rows [gate_i | up_i | down[:, i]] with zero padding, from nn.Linear weights."""
    d_ff, d = gate.shape
    p = part_bytes // 4
    out = np.zeros((d_ff, 3 * p), dtype=np.float32)
    out[:, 0:d] = gate.detach().float().numpy()
    out[:, p:p + d] = up.detach().float().numpy()
    out[:, 2 * p:2 * p + d] = down.detach().float().T.numpy()
    return out


def write(path: Path, config: dict[str, Any], resident: dict[str, torch.Tensor],
          layers: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], d_ff: int,
          meta: dict[str, Any], progress: Callable[[int], None] | None = None) -> Path:
    """Write a flash file atomically; `layers` yields (gate, up, down) nn.Linear weights per layer."""
    from safetensors.torch import save

    path = Path(path)
    d_model, n_layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    blob = save({k: v.contiguous() for k, v in resident.items()})
    start = _up(HEADER_BYTES + len(blob), ALIGN)
    probe = Layout(d_model, d_ff, n_layers, ())
    offsets = tuple(start + i * _up(probe.layer_bytes, ALIGN) for i in range(n_layers))
    layout = Layout(d_model, d_ff, n_layers, offsets)
    tmp = path.with_name(path.name + ".partial")
    crcs = []
    try:
        with open(tmp, "wb") as f:
            f.seek(HEADER_BYTES)
            f.write(blob)
            for i, (g, u, dn) in enumerate(layers):
                data = bundle_matrix(g, u, dn, layout.part_bytes).tobytes()
                f.seek(offsets[i])
                f.write(data)
                crcs.append(zlib.crc32(data))
                if progress:
                    progress(i + 1)
            if len(crcs) != n_layers:
                raise XbarError(f"{path}: got {len(crcs)} FFN layers, config says {n_layers}")
            f.truncate(offsets[-1] + _up(layout.layer_bytes, ALIGN))
            header = {"format": FORMAT, "dtype": "float32", "config": config, "d_model": d_model, "d_ff": d_ff,
                      "n_layers": n_layers, "block": BLOCK, "part_bytes": layout.part_bytes,
                      "bundle_bytes": layout.bundle_bytes, "layer_bytes": layout.layer_bytes,
                      "resident": {"offset": HEADER_BYTES, "bytes": len(blob), "crc32": zlib.crc32(blob)},
                      "layers": [{"offset": o, "crc32": c} for o, c in zip(offsets, crcs, strict=True)], **meta}
            text = json.dumps(header).encode()
            if len(text) + 16 > HEADER_BYTES:
                raise XbarError(f"{path}: header of {len(text)} bytes does not fit in {HEADER_BYTES}")
            f.seek(0)
            f.write(MAGIC + struct.pack("<Q", len(text)) + text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _crc_of(f, offset: int, length: int) -> int:
    f.seek(offset)
    crc, left = 0, length
    while left:
        data = f.read(min(left, 8 << 20))
        if not data:
            break
        crc, left = zlib.crc32(data, crc), left - len(data)
    return crc


def open_flash(path: str | Path, verify: bool = True) -> FlashFile:
    """Read and check a flash file (magic, header, size, CRC-32 of every region); errors name the file."""
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise XbarError(f"{path}: no such flash file (create it with `xbarllm flash convert`)")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(16)
        if len(head) < 16 or head[:8] != MAGIC:
            raise XbarError(f"{path}: not an xbarllm flash file (bad magic)")
        (n,) = struct.unpack("<Q", head[8:])
        try:
            header = json.loads(f.read(min(n, HEADER_BYTES)))
            layout = Layout(header["d_model"], header["d_ff"], header["n_layers"],
                            tuple(e["offset"] for e in header["layers"]))
            res = header["resident"]
        except (ValueError, KeyError, TypeError) as e:
            raise XbarError(f"{path}: corrupt header ({type(e).__name__}: {e})") from None
        if header.get("format") != FORMAT or header.get("part_bytes") != layout.part_bytes:
            raise XbarError(f"{path}: unsupported flash format {header.get('format')!r}")
        end = layout.layer_offsets[-1] + layout.layer_bytes if layout.layer_offsets else 0
        if size < end:
            raise XbarError(f"{path}: truncated ({size:,} bytes, header needs {end:,})")
        f.seek(res["offset"])
        blob = f.read(res["bytes"])
        if zlib.crc32(blob) != res["crc32"]:
            raise XbarError(f"{path}: resident weights fail their checksum (file corrupt)")
        if verify:
            for i, e in enumerate(header["layers"]):
                if _crc_of(f, e["offset"], layout.layer_bytes) != e["crc32"]:
                    raise XbarError(f"{path}: FFN layer {i} fails its checksum (file corrupt)")
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    try:
        resident = load(blob)
    except Exception as e:  # safetensors raises its own error types
        raise XbarError(f"{path}: resident weights unreadable ({e})") from None
    return FlashFile(path, header, layout, resident)
