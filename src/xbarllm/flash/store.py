"""Per-layer DRAM store of FFN bundles: a preallocated matrix, a pointer vector, delete by moving the last rows
into the holes, append without reallocation (the paper's §3.3 memory management)."""

from __future__ import annotations

import torch

from xbarllm.flash.io import aligned_floats


class NeuronStore:
    """`capacity` rows of bundles [gate | up | down] (each part `part` floats, first `d` used) for one layer."""

    def __init__(self, capacity: int, d_ff: int, d: int, part: int):
        self.capacity, self.d, self.part = capacity, d, part
        self._mm, self.rows = aligned_floats(capacity, 3 * part)
        self.ptr = torch.full((capacity,), -1, dtype=torch.long)  # neuron held by each row
        self.slot = torch.full((d_ff,), -1, dtype=torch.long)  # row holding each neuron, or -1
        self.used = 0

    @property
    def nbytes(self) -> int:
        return len(self._mm) + self.ptr.numel() * 8 + self.slot.numel() * 8

    def row_view(self, lo: int, hi: int | None = None) -> memoryview:
        """The bytes of rows lo..hi−1 (default: row lo alone), a BLOCK-aligned destination for a read."""
        n = self.rows.shape[1] * 4
        return memoryview(self._mm)[lo * n:(lo + 1 if hi is None else hi) * n]

    def held(self) -> torch.Tensor:
        """Bool mask over neurons: which are in the store."""
        return self.slot >= 0

    def delete(self, drop: torch.Tensor) -> int:
        """Remove the neurons marked in bool `drop` (d_ff,) by moving the last kept rows into their holes."""
        n = self.used
        gone = drop[self.ptr[:n]]
        k = int(n - gone.sum())
        holes = torch.nonzero(gone[:k]).flatten()
        movers = torch.nonzero(~gone[k:]).flatten() + k
        self.slot[self.ptr[:n][gone]] = -1
        if len(holes):
            self.rows[holes] = self.rows[movers]
            self.ptr[holes] = self.ptr[movers]
            self.slot[self.ptr[holes]] = holes
        self.ptr[k:n] = -1
        self.used = k
        return len(gone.nonzero())

    def reserve(self, neurons: torch.Tensor) -> range:
        """Claim rows for `neurons` (long, not yet held) at the end; returns the row range to read them into."""
        start, m = self.used, len(neurons)
        if start + m > self.capacity:
            raise ValueError(f"store overflow: {start} + {m} > {self.capacity}")
        rows = torch.arange(start, start + m)
        self.ptr[rows] = neurons
        self.slot[neurons] = rows
        self.used += m
        return range(start, start + m)

    def clear(self) -> None:
        self.slot[self.ptr[:self.used]] = -1
        self.ptr[:self.used] = -1
        self.used = 0

    def ffn(self, x: torch.Tensor, act) -> torch.Tensor:
        """SwiGLU over the held neurons: act(x·Gᵀ)·(x·Uᵀ)·D, with x (tokens, d) → (tokens, d)."""
        r, d, p = self.rows[:self.used], self.d, self.part
        return (act(x @ r[:, :d].T) * (x @ r[:, p:p + d].T)) @ r[:, 2 * p:2 * p + d]
