"""Sweep files: a base hardware preset, models × phases × sequence lengths, and axes over any spec field."""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from xbarllm.errors import XbarError, from_validation
from xbarllm.spec import HardwareSpec, load_hardware
from xbarllm.spec.hardware import structural_fields
from xbarllm.spec.model import load_model


class Sweep(BaseModel):
    """What to explore. `axes` maps dotted hardware fields (e.g. compute.d_c, components.adc8.area_um2) to
    the values to try."""

    model_config = ConfigDict(extra="forbid")

    hardware: str = Field("proposed", description="hardware preset name or YAML path")
    models: list[str] = Field(min_length=1)
    phases: list[Literal["prefill", "decode"]] = Field(["prefill"], min_length=1)
    seq_lens: list[PositiveInt] = Field([256], min_length=1)
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    sample: PositiveInt | None = Field(None, description="evaluate this many random grid points instead of all")
    seed: int = 0


@dataclass(frozen=True)
class Point:
    """One design point: the base spec and its axis values, the workload, and the hash of the fully
    resolved spec that keys its result. Points of one sweep share `base`, so a batch pickles it once."""

    key: str
    model: str
    phase: str
    seq_len: int
    axes: dict[str, Any]
    base: HardwareSpec

    @property
    def hardware(self) -> HardwareSpec:
        """The resolved spec: base with the axis values."""
        return self.base.with_updates(self.axes)


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep YAML; errors name the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise XbarError(f"{path}: not a readable YAML file ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise XbarError(f"{path}: a sweep is a mapping with models, phases, seq_lens and axes")
    try:
        sweep = Sweep.model_validate(data)
    except ValidationError as e:
        raise from_validation(str(path), e) from None
    base = load_hardware(sweep.hardware)
    known = set(structural_fields(base)) | {f"components.{c}.{f}" for c in base.components
                                            for f in ("area_um2", "energy_pj", "rate_hz", "width_bits")}
    for axis, values in sweep.axes.items():
        if axis not in known:
            raise XbarError(f"{path}: axes.{axis}: unknown spec field (e.g. compute.d_c, compute.encoding_s, "
                            "components.adc8.energy_pj)")
        if not values:
            raise XbarError(f"{path}: axes.{axis}: lists no values")
    for m in sweep.models:
        load_model(m)
    return sweep


def point_key(hw: HardwareSpec, model: str, phase: str, seq_len: int) -> str:
    """SHA-256 of the fully resolved spec and workload, the primary key of a result row."""
    blob = json.dumps({"hardware": hw.model_dump(mode="json"), "model": model, "phase": phase,
                       "seq_len": seq_len}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def points(sweep: Sweep) -> list[Point]:
    """Every point of the sweep (or a seeded sample of `sweep.sample` of them), validated, in a fixed order.
    Encoder-only models are swept in prefill only."""
    base = load_hardware(sweep.hardware)
    names = list(sweep.axes)
    combos = list(itertools.product(*(sweep.axes[n] for n in names)))
    encoders = {m for m in sweep.models if load_model(m).family == "encoder"}  # these have no decode phase
    work = [w for w in itertools.product(sweep.models, sweep.phases, sweep.seq_lens, combos)
            if not (w[1] == "decode" and w[0] in encoders)]
    if sweep.sample is not None and sweep.sample < len(work):
        work = random.Random(sweep.seed).sample(work, sweep.sample)
    out, specs = [], {}
    for model, phase, seq_len, combo in work:
        if combo not in specs:  # validates the resolved spec once per combination
            specs[combo] = base.with_updates(dict(zip(names, combo, strict=True)))
        out.append(Point(point_key(specs[combo], model, phase, seq_len), model, phase, seq_len,
                         dict(zip(names, combo, strict=True)), base))
    if not out:
        raise XbarError("sweep has no points")
    return out
