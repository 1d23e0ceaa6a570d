"""Functional simulator: bit-faithful numerics of the crossbar path, applied to real HF models."""

import hashlib
import os
import re
from pathlib import Path

_IMPORTS_NUMBA = re.compile(rb"^(import|from) numba\b", re.MULTILINE)  # a module-level import


def numba_cache_dir(package: Path) -> Path:
    """The folder where numba caches the functions of `package`'s modules: a subfolder of NUMBA_CACHE_DIR if set,
    else __pycache__ beside the sources if writable, else numba's user-wide cache; asked of numba's own locators
    (one folder per source folder), __pycache__ if those cannot be asked."""
    try:
        from numba.core import caching

        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # _CacheImpl in older numba
        source = str(next(package.glob("*.py")))
        for cls in impl._locator_classes:
            locator = cls.from_function(numba_cache_dir, source)
            if locator is not None:
                return Path(locator.get_cache_path())
    except (ImportError, AttributeError, StopIteration):  # another numba, or no module to ask about
        pass
    return package / "__pycache__"


def drop_stale_numba_caches(package: Path) -> bool:
    """Delete numba's cache files for `package` (`numba_cache_dir`) unless the package's modules that import numba
    are the ones they were compiled from (a digest kept beside them); returns whether it deleted. numba recompiles
    a cached function when its own file changes, but not when a function it inlines from another module does
    (`kernel` and `int8` inline `column` and `rng`), so without this an edit to one module could leave stale
    machine code in another."""
    sources = (p.read_bytes() for p in sorted(package.glob("*.py")))
    digest = hashlib.sha256(b"".join(s for s in sources if _IMPORTS_NUMBA.search(s))).hexdigest()
    cache = numba_cache_dir(package)
    stamp = cache / "numba-sources.sha256"
    if stamp.is_file() and stamp.read_text() == digest:
        return False
    for f in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
        f.unlink(missing_ok=True)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # numba cannot cache here either
        pass
    return True


def prefer_512_bit_vectors() -> bool:
    """Let numba vectorise at 512 bits on a CPU with AVX-512 (LLVM's tuning for Intel's prefers 256): sets
    NUMBA_CPU_FEATURES to the host's features with -prefer-256-bit, unless it is set already; returns whether it
    did. Numbers do not change: numba does not reassociate float arithmetic, and the kernels call no vector
    maths library, so no result depends on the vector width. On an Intel Xeon the noisy Linears ran 13-14 %
    faster (docs/sim-speed.md, stop 31). It takes effect only if no numba function was defined before in the
    process (numba fixes its target at the first one); set NUMBA_CPU_FEATURES yourself to choose otherwise."""
    if "NUMBA_CPU_FEATURES" in os.environ:
        return False
    import llvmlite.binding as ll
    from numba.core import config

    features = ll.get_host_cpu_features()
    if not features.get("avx512f"):
        return False
    os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    config.reload_config()
    return True


prefer_512_bit_vectors()
drop_stale_numba_caches(Path(__file__).parent)

from xbarllm.sim.config import SimConfig  # noqa: E402
from xbarllm.sim.crossbar import xbar_matmul  # noqa: E402

__all__ = ["SimConfig", "xbar_matmul"]
