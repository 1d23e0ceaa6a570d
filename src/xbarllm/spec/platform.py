"""Roofline platforms (TPU, GPU): peak rate, bandwidth, power, area; loaded from YAML presets."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from xbarllm.errors import from_validation
from xbarllm.spec import presets


class _Sourced(BaseModel):
    """A named preset whose every numeric field has an entry in `sources`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sources: dict[str, str]

    @model_validator(mode="after")
    def _check_sources(self) -> _Sourced:
        missing = [f for f in type(self).model_fields if f not in ("name", "sources") and not self.sources.get(f)]
        if missing:
            raise ValueError(f"sources: no source given for {', '.join(missing)}")
        return self


class PlatformSpec(_Sourced):
    """A digital accelerator seen as a roofline (GenZ): time = max(ops / peak, bytes / bandwidth)."""

    node_nm: PositiveInt
    peak_int8_tops: PositiveFloat
    mem_bw_gb_per_s: PositiveFloat
    power_w: PositiveFloat
    die_area_mm2: PositiveFloat
    compute_efficiency: float = Field(gt=0, le=1)
    memory_efficiency: float = Field(gt=0, le=1)


class PinnedSpec(_Sourced):
    """A traditional crossbar chip that pins every weight in its own cells (ISAAC-style)."""

    node_nm: PositiveInt
    xbar_rows: PositiveInt
    xbar_cols: PositiveInt
    bits_per_cell: PositiveInt
    crossbars_per_chip: PositiveInt
    chip_area_mm2: PositiveFloat


def platform_presets() -> list[str]:
    """Names of the roofline and pinned-crossbar platform presets."""
    return presets.names("platforms", ".yaml")


def load_platform(name_or_path: str | Path) -> PlatformSpec | PinnedSpec:
    """Load a roofline or pinned-crossbar platform from a preset or YAML file; errors name the field."""
    where, data = presets.load_yaml("platforms", name_or_path, "platform")
    kind = PinnedSpec if "crossbars_per_chip" in data else PlatformSpec
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise from_validation(where, e) from None
