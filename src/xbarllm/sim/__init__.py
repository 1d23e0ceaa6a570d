"""Functional simulator: bit-faithful numerics of the crossbar path, applied to real HF models."""

import hashlib
from pathlib import Path


def drop_stale_numba_caches(package: Path) -> bool:
    """Delete the numba cache files in `package`/__pycache__ unless the package's modules that use numba are the
    ones they were compiled from (a digest kept beside them); returns whether it deleted. numba recompiles a cached
    function when its own file changes, but not when a function it inlines from another module does (`kernel` and
    `int8` inline `column` and `rng`), so without this an edit to one module could leave stale machine code in
    another."""
    sources = (p.read_bytes() for p in sorted(package.glob("*.py")))
    digest = hashlib.sha256(b"".join(s for s in sources if b"numba" in s)).hexdigest()
    stamp = package / "__pycache__" / "numba-sources.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return False
    for f in [*stamp.parent.glob("*.nbi"), *stamp.parent.glob("*.nbc")]:
        f.unlink(missing_ok=True)
    try:
        stamp.parent.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: numba then caches elsewhere (or not at all)
        pass
    return True


drop_stale_numba_caches(Path(__file__).parent)

from xbarllm.sim.config import SimConfig  # noqa: E402
from xbarllm.sim.crossbar import xbar_matmul  # noqa: E402

__all__ = ["SimConfig", "xbar_matmul"]
