"""Hardware spec: the crossbar chip as typed data, loaded from YAML presets or user files.

Structure (counts, sizes, bit widths) lives in the sections `compute`, `dense`, `caches`, `chip`;
component figures (area, later energy) live in `components`, one entry each with its source.
Every structural field must have an entry in `sources`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)

from xbarllm.errors import XbarError, from_validation
from xbarllm.spec import presets


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComputeCrossbar(_Strict):
    """Computation crossbar: fixed resistors switched by activation digits; weights enter via DACs."""

    rows: PositiveInt = Field(description="rows, each driven by one DAC")
    cols: PositiveInt = Field(description="columns; an activation uses a (+,-) column pair")
    encoding_s: int = Field(ge=1, le=8, description="S: activations in balanced base 2^(S+1)-1, S rows each")
    act_bits: int = Field(ge=2, le=16, description="activation bit width (symmetric INT)")
    weight_bits: int = Field(ge=1, le=16, description="DAC resolution = weight bit width")
    adc_bits: PositiveInt = Field(description="resolution of the shared ADC")
    cols_per_adc: PositiveInt = Field(description="columns time-shared by one ADC")
    d_c: PositiveInt = Field(description="column duplication: activations processed in parallel per crossbar")
    n_crossbars: PositiveInt = Field(description="computation crossbars on the chip")
    copies: PositiveInt = Field(1, description="copies of each element's S rows in a column (redundancy against "
                                "RTN, as sim's copies; 1 = the paper): a crossbar holds rows // (S·copies) elements")

    @model_validator(mode="after")
    def _check(self) -> ComputeCrossbar:
        if self.rows < self.encoding_s * self.copies:
            raise ValueError(f"encoding_s ({self.encoding_s}) x copies ({self.copies}) needs at least that many "
                             f"rows ({self.rows})")
        if self.d_c > self.cols // 2:
            raise ValueError(f"d_c ({self.d_c}) exceeds the {self.cols // 2} (+,-) column pairs "
                             f"of a {self.cols}-column crossbar")
        if self.cols % self.cols_per_adc:
            raise ValueError(f"cols_per_adc ({self.cols_per_adc}) does not divide cols ({self.cols})")
        return self


class DenseCrossbar(_Strict):
    """Dense crossbar: a memory bank of multi-bit memristors, read one column at a time."""

    rows: PositiveInt
    cols: PositiveInt
    bits_per_cell: int = Field(ge=1, le=8)
    register_count: PositiveInt
    register_bits: PositiveInt

    @property
    def capacity_bits(self) -> int:
        """Bits one dense crossbar stores."""
        return self.rows * self.cols * self.bits_per_cell


class Caches(_Strict):
    """On-chip caches of Fig. 10 / Table 5, in KiB, and the column width of a T1/T2 phase."""

    d1_kib: PositiveFloat
    d2_kib: PositiveFloat
    t1_kib: PositiveFloat
    t2_kib: PositiveFloat
    s_kib: PositiveFloat
    ck_cols: PositiveInt = Field(description="columns of Q/K/V/R held in T1/T2 per phase")

    def capacity_bytes(self, name: str) -> int:
        """Capacity of cache `name` (D1, D2, T1, T2 or S) in bytes."""
        return int(getattr(self, f"{name.lower()}_kib") * 1024)


class Chip(_Strict):
    area_cap_mm2: PositiveFloat = Field(description="largest area one chip may have")
    stacked_layers: PositiveInt = Field(description="3D-stacked layers per chip (area cap applies per layer)")
    digital_mac_units: int = Field(0, ge=0, description="MAC units of a digital unit for blocks kept off the "
                                   "crossbars (mapping's `digital`; 0 = none, the paper's design)")


class Timing(_Strict):
    """Clock and bandwidths the paper leaves open or takes from Eq. 8."""

    xbar_cycle_ns: PositiveFloat = Field(description="one crossbar read (one activation digit)")
    adc_rate_gsps: PositiveFloat = Field(description="conversions per second of the shared ADC, in G/s")
    cache_bw_gb_per_s: PositiveFloat = Field(description="B_a of Eq. 8: activation cache bandwidth")
    dense_bw_gb_per_s: PositiveFloat = Field(description="B_w of Eq. 8: dense -> computation crossbar")


class Component(_Strict):
    """One circuit component: area, energy per event, rate, and where each figure comes from."""

    area_um2: float = Field(ge=0)
    energy_pj: float = Field(ge=0, description="energy per event: conversion, cell read, bit, operation")
    rate_hz: float | None = Field(None, gt=0, description="events per second, where it limits timing")
    width_bits: int | None = Field(None, gt=0, description="bits per event, for buses")
    basis: Literal["taken", "derived", "assumed"]
    source: str = Field(min_length=8, description="where the area (and rate) comes from")
    energy_source: str = Field(min_length=8, description="where the energy comes from")


REQUIRED_COMPONENTS = ("adc8", "dac8", "resistor_cell", "control_register_bit", "shift_add", "f_unit",
                       "encoder", "sqrt_div", "memristor_cell", "dac1", "adc2_sense", "cache_bit", "link_bus",
                       "digital_mac")


class HardwareSpec(_Strict):
    """A whole chip: crossbars, caches, chip limits and component figures, each with a source."""

    name: str
    description: str = ""
    node_nm: PositiveInt
    compute: ComputeCrossbar
    dense: DenseCrossbar
    caches: Caches
    chip: Chip
    timing: Timing
    sources: dict[str, str]
    components: dict[str, Component]

    @model_validator(mode="after")
    def _check_sources(self) -> HardwareSpec:
        missing = [p for p in structural_fields(self) if not self.sources.get(p) and not _defaulted(self, p)]
        if missing:
            raise ValueError(f"sources: no source given for {', '.join(missing)}")
        unknown = sorted(set(self.sources) - set(structural_fields(self)))
        if unknown:
            raise ValueError(f"sources: names no field: {', '.join(unknown)}")
        absent = [c for c in REQUIRED_COMPONENTS if c not in self.components]
        if absent:
            raise ValueError(f"components: missing {', '.join(absent)}")
        return self

    def get(self, dotted: str) -> object:
        """The value of a dotted field, e.g. 'compute.d_c'."""
        node: object = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def with_updates(self, updates: dict[str, object]) -> HardwareSpec:
        """A copy with dotted-path fields replaced (e.g. {'compute.d_c': 8}), validated again."""
        data = self.model_dump()
        for path, value in updates.items():
            node = data
            *parents, leaf = path.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise XbarError(f"{self.name}: {path}: unknown field")
                node = node[p]
            if leaf not in node:
                raise XbarError(f"{self.name}: {path}: unknown field")
            node[leaf] = value
        try:
            return HardwareSpec.model_validate(data)
        except ValidationError as e:
            raise from_validation(self.name, e) from None


def structural_fields(spec: HardwareSpec) -> list[str]:
    """Dotted names of every structural knob (everything but name, text, sources and components)."""
    out = ["node_nm"]
    for section in ("compute", "dense", "caches", "chip", "timing"):
        out += [f"{section}.{f}" for f in type(getattr(spec, section)).model_fields]
    return out


def _defaulted(spec: HardwareSpec, dotted: str) -> bool:
    """Whether an optional field was left out of the spec (it then holds the paper's design, no source needed)."""
    section, _, field = dotted.rpartition(".")
    part = getattr(spec, section) if section else spec
    return not type(part).model_fields[field].is_required() and field not in part.model_fields_set


def hardware_presets() -> list[str]:
    """Names of the hardware presets shipped with the package."""
    return presets.names("hardware", ".yaml")


def load_hardware(name_or_path: str | Path = "proposed") -> HardwareSpec:
    """Load a hardware spec from a preset name or a YAML file; errors name the file and field."""
    return presets.load_validated("hardware", name_or_path, "hardware", HardwareSpec)
