"""Simulation settings: the numerics of one crossbar chip, typed and validated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xbarllm.mapping.encoding import elements_per_crossbar
from xbarllm.spec import presets

STAGES = ("linear", "head", "attention", "norm")


class SimConfig(BaseModel):
    """How products run through the simulated crossbar. Noise amplitudes are fractions of the signal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["fp32", "int8", "xbar", "xbar_stat", "analog"] = Field(
        "xbar", description="fp32 reference, INT8 digital, crossbar (bit level: every digit, tile, column sum, "
        "RTN draw and ADC conversion), xbar_stat (the crossbar's error in distribution: the exact integer "
        "product plus one Gaussian per output with the RTN variance of the digits' resistors and the ADC's "
        "rounding variance, without clipping, so full-scale ranges only; one-column products, and those whose "
        "error is mostly rounding (stat_max_adc_share), stay bit level; see sim.stat), or analog: fp32 products "
        "plus the RTN model's Gaussian error (variance rtn² Σ x²y²) without quantisation, digits or ADC, a control "
        "that separates a model's own noise sensitivity from the crossbar's numerics")
    stat_max_adc_share: float = Field(
        0.5, ge=0, le=1, description="xbar_stat: a product whose ADC rounding carries more than this share of its "
        "modelled error variance runs at the bit level instead, since its rounding error is then mostly a "
        "deterministic function of the column sums, which a random draw misrepresents (so, without noise, "
        "every product whose ADC rounds does; 1 = never)")
    encoding_s: int = Field(2, ge=1, le=8, description="S: balanced base 2^(S+1)-1, S resistor rows per element")
    rows: int = Field(128, ge=1, description="crossbar rows; a tile holds rows // S reduction elements")
    act_bits: int = Field(8, ge=2, le=16, description="symmetric activation integers, |x| <= 2^(b-1)-1; "
                          "the digit count follows (at S = 2: 3 digits for 8 bits, 4 for 9-11 bits, the "
                          "paper's 4-cycle setting of Table 9)")
    weight_bits: int = Field(8, ge=2, le=8, description="DAC levels for weights, symmetric")
    adc_bits: int | None = Field(8, ge=1, le=24, description="shared ADC resolution; None = ideal (no ADC)")
    adc_policy: Literal["worst_case", "calibrated", "calibrated_tile"] = Field(
        "calibrated", description="ADC full scale: the largest possible column sum x adc_fullscale "
        "(worst_case); per product site and digit, the largest column sum seen on calibration data "
        "(calibrated); or, for WS products, the same per crossbar tile, each crossbar's ADC with its own "
        "reference (calibrated_tile)")
    adc_clip_quantile: float = Field(1.0, gt=0.5, le=1.0, description="calibrated policies: full scale at "
                                     "this quantile of the column sums seen (1.0 = the largest); sums above clip")
    adc_overrange: Literal["clip", "reconvert"] = Field(
        "clip", description="a column sum above the ADC full scale clips (clip), or the ADC's over-range "
        "flag triggers a second conversion of that column with the reference raised by the smallest power "
        "of two that covers the sum, at most to the largest possible column sum (reconvert; one more ADC "
        "cycle per such sum, counted)")
    adc_fullscale: float = Field(1.0, gt=0, le=1, description="worst_case policy: fraction of the largest "
                                 "possible column sum; sums above it clip")
    rtn: float = Field(0.0, ge=0, description="RTN: relative conductance fluctuation of each conducting resistor")
    copies: int = Field(1, ge=1, le=64, description="copies of each reduction element's S resistor rows in its "
                        "crossbar column (a redundancy policy; the paper has 1): their currents add, so a column "
                        "sum's relative RTN falls by √copies, while a tile holds rows // (S·copies) elements, so "
                        "a product takes copies× the tiles and ADC conversions (the cost model's compute.copies)")
    bits_per_cell: int = Field(2, ge=1, le=8, description="dense crossbar bits per memristor")
    misread_prob: float = Field(0.0, ge=0, le=1, description="dense cell read as an adjacent level")
    dense_noise: float = Field(0.0, ge=0, description="dense cell read noise, as a fraction of the conductance "
                               "range; adds the misreads it causes at bits_per_cell (see faults.misread_probability)")
    stuck_rate: float = Field(0.0, ge=0, le=1, description="dense cells stuck at the lowest or highest level")
    softmax_subtract_max: bool = Field(False, description="subtract the row maximum before EXP (the paper does not)")
    smooth_alpha: float | None = Field(None, ge=0, le=1, description="activation smoothing of every Linear "
                                       "(SmoothQuant): input channel j is divided by s_j = max|x_j|^a / "
                                       "max|w_j|^(1-a), from calibration data, and weight row j multiplied by "
                                       "it; None = off")
    stages: str = Field("linear+head+attention+norm", description="'+'-joined products that run on the "
                        "simulated chip: linear (the transformer's Linears), head (the output projection, e.g. an "
                        "LM's vocabulary logits), attention, norm; the others stay fp32 (a digital unit), to "
                        "attribute a loss to a stage or keep one off the analog path")
    tune_steps: int = Field(0, ge=0, description="causal LMs: steps (256-token windows of calibration text) of "
                            "noise-aware self-distillation before the run, with RTN tune_rtn on the Linears whose "
                            "stage (linear, head) runs on the chip (sim.tune); 0 = off")
    tune_rtn: float = Field(0.05, gt=0, description="relative RTN amplitude of one resistor the model is tuned "
                            "under (the paper's upper bound of real devices), divided by √copies as on the chip")
    seed: int = 0

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: str) -> str:
        parts = v.split("+")
        bad = [p for p in parts if p not in STAGES]
        if bad or not parts:
            raise ValueError(f"unknown stage {bad[0] if bad else v!r} (stages: {', '.join(STAGES)})")
        return v

    @model_validator(mode="after")
    def _copies_fit(self) -> SimConfig:
        if elements_per_crossbar(self.rows, self.encoding_s, self.copies) < 1:
            raise ValueError(f"copies: {self.copies} copies of {self.encoding_s} rows do not fit in {self.rows} rows")
        return self

    def per_element(self, rtn: float) -> float:
        """Relative RTN of one element's product term when each resistor has `rtn` and the copies add:
        rtn / √copies."""
        return rtn / self.copies**0.5

    @property
    def rtn_element(self) -> float:
        """`per_element` of the chip's RTN."""
        return self.per_element(self.rtn)

    @model_validator(mode="after")
    def _stat_does_not_clip(self) -> SimConfig:
        if self.mode == "xbar_stat" and (self.adc_clip_quantile < 1 or self.adc_fullscale < 1):
            field = "adc_clip_quantile" if self.adc_clip_quantile < 1 else "adc_fullscale"
            raise ValueError(f"mode xbar_stat does not model clipping; {field} must be 1")
        return self

    @model_validator(mode="after")
    def _analog_is_rtn_only(self) -> SimConfig:
        dense = {k: getattr(self, k) for k in ("misread_prob", "dense_noise", "stuck_rate") if getattr(self, k)}
        if self.mode == "analog" and dense:
            raise ValueError(f"mode analog models the RTN only; {next(iter(dense))} must be 0")
        return self

    def runs(self, stage: str) -> bool:
        """Whether products of `stage` (linear, head, attention, norm) go through the simulated chip."""
        return stage in self.stages.split("+")


def sim_presets() -> list[str]:
    """Names of the chip numerics presets shipped under spec/presets/sim."""
    return presets.names("sim", ".yaml")


def load_sim_config(name_or_path: str | Path = "paper") -> SimConfig:
    """A SimConfig from a preset name or a YAML file of its fields; errors name the file and field."""
    return presets.load_validated("sim", name_or_path, "sim config", SimConfig)
