"""Roofline platforms (TPU, GPU): peak rate, bandwidth, power, area; loaded from YAML presets."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, ValidationError, model_validator

from xbarllm.errors import XbarError, from_validation

_DIR = "spec/presets/platforms"


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
    """Names of the roofline platform presets."""
    return sorted(p.name[:-5] for p in (resources.files("xbarllm") / _DIR).iterdir() if p.name.endswith(".yaml"))


def load_platform(name_or_path: str | Path) -> PlatformSpec | PinnedSpec:
    """Load a roofline or pinned-crossbar platform from a preset or YAML file; errors name the field."""
    text = str(name_or_path)
    if text in platform_presets():
        where, raw = text, (resources.files("xbarllm") / _DIR / f"{text}.yaml").read_text()
    elif Path(text).is_file():
        where, raw = text, Path(text).read_text()
    else:
        raise XbarError(f"unknown platform '{text}' (presets: {', '.join(platform_presets())})")
    try:
        data = yaml.safe_load(raw)
        kind = PinnedSpec if isinstance(data, dict) and "crossbars_per_chip" in data else PlatformSpec
        return kind.model_validate(data)
    except yaml.YAMLError:
        raise XbarError(f"{where}: not valid YAML") from None
    except ValidationError as e:
        raise from_validation(where, e) from None
