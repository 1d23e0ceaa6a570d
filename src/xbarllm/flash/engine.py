"""Autoregressive generation with FFN neurons streamed from a flash file under an explicit DRAM budget.

Modes (the rows of the paper's Tables 2–3):
- ``naive``: every FFN weight is read from the file for every token;
- ``hybrid``: as many neurons per layer as the budget allows stay pinned, the rest is read per token;
- ``sparse``: the low-rank predictor picks the neurons, a window of the last k tokens' neurons stays in a
  preallocated store, and only newly needed neurons are read, bundled (one read per neuron) or not
  (three reads: gate row, up row, down column).
Attention, embeddings and norms stay resident. Prefill streams every FFN layer through the same buffers.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import torch
from torch import nn

from xbarllm.errors import XbarError
from xbarllm.flash.fileformat import FlashFile, open_flash
from xbarllm.flash.io import Reader
from xbarllm.flash.sparsity import LowRankPredictor
from xbarllm.flash.store import NeuronStore

log = logging.getLogger(__name__)
Mode = Literal["naive", "hybrid", "sparse"]
PRED = "flash.pred"


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs; `budget` ≤ 1 is a fraction of the fp32 model size, > 1 a byte count."""

    mode: Mode = "sparse"
    budget: float = 0.5
    window: int = 4
    bundled: bool = True
    threads: int = 8
    chunk_bytes: int = 256 * 1024
    direct: bool = True


class _FlashMLP(nn.Module):
    def __init__(self, engine: Engine, layer: int):
        super().__init__()
        self.engine, self.layer = [engine], layer  # list: keep the engine out of the module tree

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine[0].ffn(self.layer, x)


def _build_model(f: FlashFile, engine: Engine) -> nn.Module:
    """The HF causal LM of the file's config with resident weights assigned and MLPs replaced by flash MLPs."""
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = dict(f.config)
    cfg = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    for i, layer in enumerate(model.model.layers):
        layer.mlp = _FlashMLP(engine, i)
    model.model.rotary_emb = type(model.model.rotary_emb)(config=cfg)  # non-persistent buffers, rebuilt on CPU
    weights = {k: v for k, v in f.resident.items() if not k.startswith("flash.")}
    _, unexpected = model.load_state_dict(weights, strict=False, assign=True)
    if unexpected:
        raise XbarError(f"{f.path}: unexpected resident tensors {unexpected[:3]}")
    if cfg.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    left = [n for n, p in model.named_parameters() if p.is_meta]
    if left:
        raise XbarError(f"{f.path}: resident weights missing {left[:3]}")
    return model.eval()


def predictors(f: FlashFile) -> tuple[list[LowRankPredictor], torch.Tensor]:
    """The per-layer low-rank predictors stored in a flash file, and their logit thresholds."""
    r, lay = f.resident, f.layout
    if f"{PRED}.tau" not in r:
        raise XbarError(f"{f.path}: has no sparsity predictors; run `xbarllm flash convert` again")
    preds = []
    for i in range(lay.n_layers):
        p = LowRankPredictor(lay.d_model, lay.d_ff, r[f"{PRED}.{i}.a.weight"].shape[0])
        p.load_state_dict({k[len(f"{PRED}.{i}."):]: v for k, v in r.items() if k.startswith(f"{PRED}.{i}.")})
        preds.append(p.eval().requires_grad_(False))
    return preds, r[f"{PRED}.tau"]


class Engine:
    """A model whose FFNs live in a flash file; see the module docstring for the modes."""

    def __init__(self, path: str | Path, cfg: EngineConfig = EngineConfig(), verify: bool = True):
        if cfg.window < 1:
            raise XbarError(f"window must be ≥ 1 token, got {cfg.window}")
        self.cfg, self.file = cfg, open_flash(path, verify)
        lay = self.layout = self.file.layout
        self.model = _build_model(self.file, self)
        self.act = nn.SiLU()
        self.resident_bytes = sum(t.nbytes for k, t in self.file.resident.items() if not k.startswith("flash."))
        self.budget_bytes = int(cfg.budget * self.file.model_bytes if cfg.budget <= 1 else cfg.budget)
        self.pred, self.tau = predictors(self.file) if cfg.mode == "sparse" else ([], torch.zeros(0))
        pred_bytes = sum(p.numel() * 4 for m in self.pred for p in m.parameters()) + self.tau.nbytes
        row, part, n = lay.bundle_bytes + 8, lay.part_bytes // 4, lay.n_layers  # a bundle and its pointer
        free = self.budget_bytes - self.resident_bytes - pred_bytes - n * lay.d_ff * 8  # minus slot vectors
        if cfg.mode == "sparse":
            cap = free // (n * row)
        elif cfg.mode == "hybrid":  # pinned rows per layer + one staging buffer for the rest of a layer
            cap = (free - lay.d_ff * row) // ((n - 1) * row)
        else:
            cap = 1
        cap = min(lay.d_ff, cap - 1)  # one row less: each buffer's mmap rounds up to a page
        if cap < 1 and cfg.mode != "naive":
            raise XbarError(f"--dram-budget {cfg.budget:g} ({self.budget_bytes / 2**20:.1f} MiB) is too small for "
                            f"{cfg.mode}: the resident weights alone take {self.resident_bytes / 2**20:.1f} MiB "
                            f"of the {self.file.model_bytes / 2**20:.1f} MiB model")
        self.pinned = cap if cfg.mode == "hybrid" else 0
        self.stores = [NeuronStore(cap, lay.d_ff, lay.d_model, part) for _ in range(n)] if cap else []
        rest = lay.d_ff - self.pinned
        self.staging = None if cfg.mode == "sparse" else NeuronStore(rest, lay.d_ff, lay.d_model, part)
        if self.dram_bytes()["total"] > self.budget_bytes:
            raise XbarError(f"--dram-budget {cfg.budget:g} ({self.budget_bytes / 2**20:.1f} MiB) is too small for "
                            f"{cfg.mode}: it needs {self.dram_bytes()['total'] / 2**20:.1f} MiB")
        self.reader = Reader(self.file.path, cfg.threads, cfg.chunk_bytes, cfg.direct)
        if self.pinned:
            for i, s in enumerate(self.stores):
                self._stream(s, i, 0, self.pinned)
        self.hist: list[deque[torch.Tensor]] = [deque(maxlen=cfg.window) for _ in range(lay.n_layers)]
        self.mm_s = 0.0
        self.loaded = 0

    def dram_bytes(self) -> dict[str, int]:
        """Bytes held for weights: resident tensors, predictors, FFN stores and the staging buffer."""
        pred = sum(p.numel() * 4 for m in self.pred for p in m.parameters()) + self.tau.nbytes
        stores = sum(s.nbytes for s in self.stores)
        staging = self.staging.nbytes if self.staging is not None else 0
        return {"resident": self.resident_bytes, "predictors": pred, "ffn_store": stores, "staging": staging,
                "total": self.resident_bytes + pred + stores + staging}

    @property
    def capacity(self) -> int:
        """Neurons per layer the store holds (sparse) or pins (hybrid)."""
        return self.stores[0].capacity if self.stores else 0

    def _stream(self, store: NeuronStore, layer: int, lo: int, hi: int) -> None:
        """Read neurons lo..hi−1 of `layer` (one contiguous region) into the empty `store`."""
        store.clear()
        store.reserve(torch.arange(lo, hi))
        self.reader.read([(self.layout.bundle_offset(layer, lo), store.row_view(0, hi - lo))])

    def ffn(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """The FFN of `layer` on x (batch, tokens, d), reading from flash what the mode needs."""
        shape, x2 = x.shape, x.reshape(-1, x.shape[-1])
        if self.cfg.mode == "sparse" and x2.shape[0] == 1:
            out = self._sparse_token(layer, x2)
        else:
            out = self._dense(layer, x2)
        return out.reshape(shape)

    def _dense(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        lay = self.layout
        if self.cfg.mode == "sparse":  # prefill: stream the layer through its own store, capacity rows at a time
            store, out = self.stores[layer], torch.zeros_like(x)
            for lo in range(0, lay.d_ff, store.capacity):
                self._stream(store, layer, lo, min(lay.d_ff, lo + store.capacity))
                out += store.ffn(x, self.act)
            store.clear()
            return out
        self._stream(self.staging, layer, self.pinned, lay.d_ff)
        out = self.staging.ffn(x, self.act)
        return out + self.stores[layer].ffn(x, self.act) if self.pinned else out

    def _sparse_token(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        store, hist = self.stores[layer], self.hist[layer]
        logits = self.pred[layer](x)[0]
        t = time.perf_counter()
        sel = logits > self.tau[layer]
        if int(sel.sum()) > store.capacity:  # more than fits: keep the most likely
            sel = torch.zeros_like(sel).index_fill_(0, logits.topk(store.capacity).indices, True)
        hist.append(sel)
        union = torch.stack(tuple(hist)).any(0)
        while int(union.sum()) > store.capacity:  # shrink the window from the oldest token
            hist.popleft()
            union = torch.stack(tuple(hist)).any(0)
        store.delete(store.held() & ~union)
        new = torch.nonzero(sel & ~store.held()).flatten()
        rows = store.reserve(new)
        lay, p = self.layout, self.layout.part_bytes
        reqs = []
        for neuron, row in zip(new.tolist(), rows, strict=True):
            off, view = lay.bundle_offset(layer, neuron), store.row_view(row)
            reqs += [(off, view)] if self.cfg.bundled else [(off + k * p, view[k * p:(k + 1) * p]) for k in range(3)]
        self.mm_s += time.perf_counter() - t
        self.loaded += len(new)
        self.reader.read(reqs)
        return store.ffn(x, self.act)

    @torch.no_grad()
    def generate(self, ids: torch.Tensor, max_new_tokens: int,
                 on_token: Callable[[int], None] | None = None) -> tuple[torch.Tensor, pd.DataFrame]:
        """Greedy generation after prompt `ids` (1-D); returns new token ids and one stats row per token
        (row 0 is the prefill): io/mm/compute/total ms, bytes and reads from flash, neurons loaded, RSS."""
        for h in self.hist:
            h.clear()
        for s in self.stores if self.cfg.mode == "sparse" else ():
            s.clear()
        rows, out, past, nxt = [], [], None, ids.reshape(1, -1)
        for step in range(max_new_tokens + 1):
            io0, b0, r0, mm0, ld0 = self.reader.stats.seconds, self.reader.stats.bytes, self.reader.stats.reads, \
                self.mm_s, self.loaded
            t = time.perf_counter()
            res = self.model(input_ids=nxt, past_key_values=past, use_cache=True)
            self.reader.drop_cache()
            total = time.perf_counter() - t
            past, nxt = res.past_key_values, res.logits[:, -1:].argmax(-1)
            io, mm = self.reader.stats.seconds - io0, self.mm_s - mm0
            rows.append({"token": step, "phase": "prefill" if step == 0 else "decode",
                         "io_ms": io * 1e3, "mm_ms": mm * 1e3, "compute_ms": (total - io - mm) * 1e3,
                         "total_ms": total * 1e3, "bytes_read": self.reader.stats.bytes - b0,
                         "reads": self.reader.stats.reads - r0, "neurons_loaded": self.loaded - ld0,
                         "held_per_layer": sum(s.used for s in self.stores) / max(len(self.stores), 1),
                         "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
            if step < max_new_tokens:
                out.append(int(nxt))
            if on_token:
                on_token(step)
        return torch.tensor(out[:max_new_tokens]), pd.DataFrame(rows)

    def close(self) -> None:
        self.reader.close()
