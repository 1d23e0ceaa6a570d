"""Many hardware specs as one: every numeric field becomes a (P, 1) array, so that cost formulas written
for one spec broadcast over P design points × ops (used by design-space exploration)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from xbarllm.spec.hardware import HardwareSpec


class _Caches(SimpleNamespace):
    def capacity_bytes(self, name: str) -> np.ndarray:
        """Capacity of cache `name` in bytes, per point."""
        return (getattr(self, f"{name.lower()}_kib") * 1024).astype(np.int64)


class _Dense(SimpleNamespace):
    @property
    def capacity_bits(self) -> np.ndarray:
        """Bits one dense crossbar stores, per point."""
        return self.rows * self.cols * self.bits_per_cell


def _column(values: list) -> np.ndarray | None:
    if any(v is None for v in values):
        return None
    return np.asarray(values).reshape(-1, 1)


def _section(objs: list, kind: type = SimpleNamespace) -> SimpleNamespace:
    fields = [f for f in type(objs[0]).model_fields if not isinstance(getattr(objs[0], f), str)]
    return kind(**{f: _column([getattr(o, f) for o in objs]) for f in fields})


def stack_updates(base: HardwareSpec, updates: list[dict[str, object]]) -> SimpleNamespace:
    """`stack` of base.with_updates(u) for each u, without building (or validating) each spec: the base's
    arrays are repeated and the dotted fields overwritten. The updates must already be valid (the
    explorer validates every point once, when it resolves and hashes it)."""
    out = stack([base])
    n = len(updates)
    for section in (out.compute, out.dense, out.caches, out.chip, out.timing, *out.components.values()):
        for f, v in vars(section).items():
            if v is not None:
                setattr(section, f, np.repeat(v, n, axis=0))
    out.node_nm = np.repeat(out.node_nm, n, axis=0)
    for path in sorted({p for u in updates for p in u}):
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            node = node[part] if isinstance(node, dict) else getattr(node, part)
        old = getattr(node, leaf)
        setattr(node, leaf, np.array([u.get(path, old[i, 0]) for i, u in enumerate(updates)]).reshape(-1, 1))
    return out


def stack(specs: list[HardwareSpec]) -> SimpleNamespace:
    """The specs' numeric fields as (P, 1) arrays, in the shape of a HardwareSpec (sections, components)."""
    names = specs[0].components.keys()
    if any(s.components.keys() != names for s in specs):
        raise ValueError("stacked specs must list the same components")
    return SimpleNamespace(
        node_nm=_column([s.node_nm for s in specs]),
        compute=_section([s.compute for s in specs]),
        dense=_section([s.dense for s in specs], _Dense),
        caches=_section([s.caches for s in specs], _Caches),
        chip=_section([s.chip for s in specs]),
        timing=_section([s.timing for s in specs]),
        components={k: _section([s.components[k] for s in specs]) for k in names},
    )
