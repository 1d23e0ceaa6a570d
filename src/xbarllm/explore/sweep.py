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
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, ValidationError, model_validator

from xbarllm.errors import XbarError, from_validation
from xbarllm.spec import HardwareSpec, load_hardware
from xbarllm.spec.hardware import structural_fields
from xbarllm.spec.model import load_model

# Hardware fields that set the simulated numerics, and the SimConfig field each one sets.
SIM_FROM_HARDWARE = {"compute.encoding_s": "encoding_s", "compute.rows": "rows", "compute.act_bits": "act_bits",
                     "compute.weight_bits": "weight_bits", "compute.adc_bits": "adc_bits",
                     "compute.copies": "copies", "dense.bits_per_cell": "bits_per_cell"}


class Accuracy(BaseModel):
    """Measure accuracy at every point: `task` through the simulated crossbar with the point's numerics.

    The numerics come from the hardware (SIM_FROM_HARDWARE) and from `axes`, simulator axes of
    `xbarllm simulate --sweep` (noise, stuck_rate, misread_prob, ...). The task fixes the model:
    MiniLM for stsb and sst2, SmolLM2 for wikitext2, whatever the sweep's cost models are."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["stsb", "sst2", "wikitext2"]
    limit: PositiveInt | None = Field(None, description="first N pairs/sentences, or N tokens")
    axes: dict[str, list[Any]] = Field(default_factory=dict)
    config: str | None = Field(None, description="a simulator preset (`xbarllm presets`) or YAML file of "
                               "SimConfig fields (a path from the working directory, as `hardware`): the chip's "
                               "numerics before the hardware and the axes set theirs")
    _preset: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load_config(self) -> Accuracy:
        if self.config is not None:
            from xbarllm.sim.config import load_sim_config

            self._preset = load_sim_config(self.config).model_dump(exclude_unset=True)
        return self

    @property
    def preset(self) -> dict[str, Any]:
        """The SimConfig fields that `config` sets (none without one)."""
        return self._preset


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
    accuracy: Accuracy | None = None


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
    accuracy: Accuracy | None = None
    sim_axes: dict[str, Any] | None = None

    @property
    def hardware(self) -> HardwareSpec:
        """The resolved spec: base with the axis values."""
        return self.base.with_updates(self.axes)

    def sim_config(self):
        """The simulator settings of this point: the accuracy config's fields, numerics from its hardware, noise
        and faults from sim_axes."""
        return sim_config(self.hardware, self.sim_axes or {}, self.accuracy.preset if self.accuracy else None)


def sim_config(hw: HardwareSpec, sim_axes: dict[str, Any], preset: dict[str, Any] | None = None):
    """SimConfig with `preset`'s fields, then the hardware's numerics (SIM_FROM_HARDWARE), then the simulator
    axes' values."""
    from xbarllm.eval.run import AXES
    from xbarllm.sim import SimConfig

    data = dict(preset or {})
    data.update({field: hw.get(path) for path, field in SIM_FROM_HARDWARE.items()})
    data.update({field: value for axis, value in sim_axes.items() for field in AXES[axis]})
    return SimConfig.model_validate(data)



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
    if sweep.accuracy is not None:
        _check_accuracy(sweep, base, path)
    return sweep


def _check_accuracy(sweep: Sweep, base: HardwareSpec, path: Path) -> None:
    from xbarllm.eval.run import AXES

    owned = set(SIM_FROM_HARDWARE.values())
    for axis, values in sweep.accuracy.axes.items():
        if axis not in AXES or set(AXES[axis]) & owned:
            usable = [a for a in AXES if not set(AXES[a]) & owned]
            raise XbarError(f"{path}: accuracy.axes.{axis}: not a simulator axis ({', '.join(usable)}; "
                            "numerics such as S or bits per cell come from the hardware axes)")
        if not values:
            raise XbarError(f"{path}: accuracy.axes.{axis}: lists no values")
    preset = sweep.accuracy.preset
    try:  # every combination must make a valid simulator config
        for hw_combo in itertools.product(*sweep.axes.values()):
            hw = base.with_updates(dict(zip(sweep.axes, hw_combo, strict=True)))
            for spec_path, field in SIM_FROM_HARDWARE.items():
                if field in preset and preset[field] != hw.get(spec_path):
                    raise XbarError(f"{path}: accuracy.config: {sweep.accuracy.config} sets {field} {preset[field]}, "
                                    f"but the hardware has {spec_path} {hw.get(spec_path)}; the hardware sets the "
                                    f"numerics the cost model shares (put {spec_path} in axes or the hardware)")
            for sim_combo in itertools.product(*sweep.accuracy.axes.values()):
                sim_config(hw, dict(zip(sweep.accuracy.axes, sim_combo, strict=True)), preset)
    except ValidationError as e:
        raise from_validation(f"{path}: accuracy", e) from None


def point_key(hw: HardwareSpec, model: str, phase: str, seq_len: int, accuracy: dict | None = None) -> str:
    """SHA-256 of the fully resolved spec and workload (and accuracy setting), the primary key of a result row."""
    what = {"hardware": hw.model_dump(mode="json"), "model": model, "phase": phase, "seq_len": seq_len}
    if accuracy is not None:
        what["accuracy"] = accuracy
    blob = json.dumps(what, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def points(sweep: Sweep) -> list[Point]:
    """Every point of the sweep (or a seeded sample of `sweep.sample` of them), validated, in a fixed order.
    Encoder-only models are swept in prefill only."""
    base = load_hardware(sweep.hardware)
    names = list(sweep.axes)
    combos = list(itertools.product(*(sweep.axes[n] for n in names)))
    acc = sweep.accuracy
    sim_names = list(acc.axes) if acc else []
    sim_combos = list(itertools.product(*(acc.axes[n] for n in sim_names))) if acc else [()]
    combos = [(c, sc) for c in combos for sc in sim_combos]
    encoders = {m for m in sweep.models if load_model(m).family == "encoder"}  # these have no decode phase
    work = [w for w in itertools.product(sweep.models, sweep.phases, sweep.seq_lens, combos)
            if not (w[1] == "decode" and w[0] in encoders)]
    if sweep.sample is not None and sweep.sample < len(work):
        work = random.Random(sweep.seed).sample(work, sweep.sample)
    out, specs = [], {}
    for model, phase, seq_len, (combo, sim_combo) in work:
        if combo not in specs:  # validates the resolved spec once per combination
            specs[combo] = base.with_updates(dict(zip(names, combo, strict=True)))
        sim_axes = dict(zip(sim_names, sim_combo, strict=True)) if acc else None
        accuracy = {"task": acc.task, "limit": acc.limit, "axes": sim_axes} if acc else None
        if acc and acc.config is not None:  # keyed by the fields it sets, so an edited file is a new point
            accuracy["config"] = acc.preset
        out.append(Point(point_key(specs[combo], model, phase, seq_len, accuracy), model, phase, seq_len,
                         dict(zip(names, combo, strict=True)), base, acc, sim_axes))
    if not out:
        raise XbarError("sweep has no points")
    return out
