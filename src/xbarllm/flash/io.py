"""Cold positioned reads from a pool of threads: O_DIRECT into aligned buffers, or fadvise(DONTNEED) when not."""

from __future__ import annotations

import logging
import mmap
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xbarllm.errors import XbarError
from xbarllm.flash.fileformat import BLOCK

log = logging.getLogger(__name__)

Request = tuple[int, memoryview]  # (file offset, destination buffer)


def aligned_floats(rows: int, cols: int) -> tuple[mmap.mmap, torch.Tensor]:
    """A page-aligned, zeroed fp32 (rows, cols) tensor backed by an anonymous mmap (kept alive by the caller)."""
    mm = mmap.mmap(-1, max(rows * cols * 4, mmap.PAGESIZE))
    arr = np.frombuffer(mm, dtype=np.float32, count=rows * cols).reshape(rows, cols)
    return mm, torch.from_numpy(arr)


@dataclass
class IOStats:
    bytes: int = 0
    reads: int = 0
    seconds: float = 0.0


@dataclass
class Reader:
    """Reads (offset, buffer) requests with `threads` workers, each request cut into ≤ `chunk_bytes` preadv calls."""

    path: Path
    threads: int = 8
    chunk_bytes: int = 256 * 1024
    direct: bool = True
    stats: IOStats = field(default_factory=IOStats)

    def __post_init__(self) -> None:
        if self.threads < 1 or self.chunk_bytes < BLOCK or self.chunk_bytes % BLOCK:
            raise XbarError(f"threads must be ≥ 1 and chunk size a multiple of {BLOCK} bytes")
        self.mode, self.fd = "fadvise", -1
        if self.direct and hasattr(os, "O_DIRECT"):
            try:
                self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
                mm = mmap.mmap(-1, mmap.PAGESIZE)
                os.preadv(self.fd, [memoryview(mm)[:BLOCK]], 0)
                self.mode = "O_DIRECT"
            except OSError as e:
                log.warning("O_DIRECT unavailable on %s (%s); using posix_fadvise(DONTNEED)", self.path, e)
                if self.fd >= 0:
                    os.close(self.fd)
        if self.mode == "fadvise":
            self.fd = os.open(self.path, os.O_RDONLY)
            self.drop_cache()
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="flash-io")

    def drop_cache(self) -> None:
        """Evict the file from the page cache (needed between tokens only in fadvise mode)."""
        if self.mode == "fadvise":
            os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def _run(self, batch: list[Request]) -> int:
        n = 0
        for off, buf in batch:
            got = os.preadv(self.fd, [buf], off)
            if got != len(buf):
                raise XbarError(f"{self.path}: short read at offset {off} ({got} of {len(buf)} bytes; truncated?)")
            n += got
        return n

    def read(self, requests: list[Request]) -> int:
        """Fill every buffer from its offset; returns bytes read. Buffers and offsets must be BLOCK-aligned."""
        if not requests:
            return 0
        chunks = [(off + s, buf[s:s + self.chunk_bytes]) for off, buf in requests
                  for s in range(0, len(buf), self.chunk_bytes)]
        t = time.perf_counter()
        n = sum(self.pool.map(self._run, [chunks[i::self.threads] for i in range(min(self.threads, len(chunks)))]))
        self.stats.seconds += time.perf_counter() - t
        self.stats.bytes += n
        self.stats.reads += len(chunks)
        return n

    def close(self) -> None:
        self.pool.shutdown()
        os.close(self.fd)

    def __enter__(self) -> Reader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def probe(path: Path, chunk_sizes: list[int], threads: list[int], read_bytes: int = 64 << 20,
          max_reads: int = 4000, seed: int = 0) -> list[dict[str, float]]:
    """Random-read throughput (GB/s) of `path` for every (chunk size, thread count), cold (the paper's Fig. 2b)."""
    size = path.stat().st_size
    rng = np.random.default_rng(seed)
    rows = []
    for chunk in chunk_sizes:
        n = int(min(max_reads, max(1, read_bytes // chunk)))
        mm, buf = aligned_floats(n, chunk // 4)
        view = memoryview(mm)
        offsets = rng.integers(0, (size - chunk) // chunk, n) * chunk
        for th in threads:
            with Reader(path, threads=th, chunk_bytes=chunk) as r:
                r.drop_cache()
                r.read([(int(o), view[i * chunk:(i + 1) * chunk]) for i, o in enumerate(offsets)])
                rows.append({"chunk_bytes": chunk, "threads": th, "reads": n, "mode": r.mode,
                             "gb_per_s": r.stats.bytes / r.stats.seconds / 1e9,
                             "us_per_read": r.stats.seconds / n * 1e6})
        del buf
    return rows


@dataclass(frozen=True)
class LatencyModel:
    """Time per read of s bytes with T threads: max((L + s/B)/T, s/B_max, 1/IOPS_max)."""

    latency_us: float  # latency to first byte of one read, single thread
    gb_per_s: float  # per-thread transfer rate
    max_gb_per_s: float  # device bandwidth ceiling
    max_iops: float  # device request-rate ceiling

    def seconds_per_read(self, chunk_bytes: float, threads: int) -> float:
        one = self.latency_us * 1e-6 + chunk_bytes / (self.gb_per_s * 1e9)
        return max(one / threads, chunk_bytes / (self.max_gb_per_s * 1e9), 1 / self.max_iops)

    def gb_per_s_at(self, chunk_bytes: float, threads: int) -> float:
        return chunk_bytes / self.seconds_per_read(chunk_bytes, threads) / 1e9


def fit_latency(rows: list[dict[str, float]]) -> LatencyModel:
    """Fit LatencyModel to probe() rows: L and B by least squares on the fewest-thread rows, ceilings as maxima."""
    few = min(r["threads"] for r in rows)
    pts = [(r["chunk_bytes"], r["us_per_read"] * few) for r in rows if r["threads"] == few]
    if len({c for c, _ in pts}) < 2:
        raise XbarError("fitting the I/O latency model needs at least two chunk sizes")
    slope, icpt = np.polyfit([c for c, _ in pts], [t for _, t in pts], 1)
    return LatencyModel(latency_us=max(float(icpt), 0.0), gb_per_s=1e-3 / max(float(slope), 1e-12),
                        max_gb_per_s=max(r["gb_per_s"] for r in rows),
                        max_iops=max(1e6 / r["us_per_read"] for r in rows))
