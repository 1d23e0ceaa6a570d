"""Baseline platforms: rooflines (TPU, GPU), pinned-weight chips (ISAAC) and traditional crossbars (MB, SB)."""

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


class TraditionalSpec(_Sourced):
    """A traditional 128×128 memristor crossbar (Fig. 12's multi-bit MB and single-bit SB designs).

    Weights are pinned: each weight column takes cols_per_slice·ceil(weight_bits / bits_per_cell) cell
    columns ((+,-) pairs, or one offset-encoded column, per bit slice); inputs enter through a
    dac_bits DAC per row, ceil(act_bits / dac_bits) crossbar cycles per input vector; one ADC serves
    `cols_per_adc` columns. NW products are run by writing the activation operand into spare
    crossbars first; a design without write figures runs WS products only. A design whose weights
    are streamed (Vesti) holds two buffers of the largest op's weights and writes every op's weights
    from off-chip memory, hidden behind compute unless the stream is slower. Converters, registers and
    caches are the proposed design's components (ISAAC's, paper §7).

    Resistance/energy trade-off (paper §7: the resistance range is tuned so that every design
    reaches equal accuracy): equal accuracy needs equal RTN relative to the level spacing, so a
    b-bit cell must keep its relative RTN (2^b - 1)/(2^b_ref - 1) times lower than the reference
    cell. With relative RTN ∝ R^γ, R shrinks by that factor^(1/γ) and the read energy V²t/R grows by it.
    """

    node_nm: PositiveInt
    rows: PositiveInt
    cols: PositiveInt
    bits_per_cell: PositiveInt
    cols_per_slice: int = Field(ge=1, le=2)
    weight_bits: PositiveInt
    act_bits: PositiveInt
    dac_bits: PositiveInt
    adc_bits: PositiveInt
    cols_per_adc: PositiveInt
    noise_reference_bits: PositiveInt
    rtn_resistance_exponent: PositiveFloat
    write_energy_pj_per_cell: PositiveFloat | None
    write_ns_per_row: PositiveFloat | None
    cell_area_um2: PositiveFloat | None = Field(description="null: the memristor cell of the hardware spec")
    weights_streamed: bool = Field(description="weights are written into the arrays for every inference from "
                                   "off-chip memory (double-buffered), instead of pinned")
    stream_pj_per_bit: float = Field(ge=0, description="energy per weight bit streamed in (off-chip read + write)")
    stream_gb_per_s: PositiveFloat | None = Field(description="bandwidth of the weight stream")

    def cycles_per_vector(self) -> int:
        """Crossbar cycles per input vector: ceil(act_bits / dac_bits) bit-serial input slices."""
        return -(-self.act_bits // self.dac_bits)

    def cells_per_weight(self) -> int:
        """Bit slices of one weight: ceil(weight_bits / bits_per_cell)."""
        return -(-self.weight_bits // self.bits_per_cell)

    def read_energy_scale(self) -> float:
        """Cell read energy relative to the reference cell, from the equal-accuracy resistance rule."""
        levels = (2**self.bits_per_cell - 1) / (2**self.noise_reference_bits - 1)
        return levels ** (1 / self.rtn_resistance_exponent)


def platform_presets() -> list[str]:
    """Names of the roofline and pinned-crossbar platform presets."""
    return presets.names("platforms", ".yaml")


def load_platform(name_or_path: str | Path) -> PlatformSpec | PinnedSpec | TraditionalSpec:
    """Load a roofline, pinned or traditional crossbar platform from a preset or YAML; errors name the field."""
    where, data = presets.load_yaml("platforms", name_or_path, "platform")
    kind = (TraditionalSpec if "rtn_resistance_exponent" in data else PinnedSpec if "crossbars_per_chip" in data
            else PlatformSpec)
    try:
        return kind.model_validate(data)
    except ValidationError as e:
        raise from_validation(where, e) from None
