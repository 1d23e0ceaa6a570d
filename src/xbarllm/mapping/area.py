"""Area of one computation crossbar, one dense crossbar and the caches, from component data (µm²).

Every function also takes stacked specs (`spec.stacked`) and then returns one area per point.

Counts follow Table 6 and Fig. 8; converter areas at other resolutions use ISAAC's rule that
ADC/DAC area doubles per added bit. Component figures and their sources live in the hardware YAML.
"""

from __future__ import annotations

import numpy as np

from xbarllm.mapping.encoding import digits_of
from xbarllm.spec.hardware import HardwareSpec
from xbarllm.workload.columns import CACHES


def per_bit(area_8bit_um2: float, bits: int) -> float:
    """ISAAC scaling: converter area × 2 per added bit, relative to the 8-bit part."""
    return area_8bit_um2 * 2.0 ** (bits - 8)


def compute_crossbar_um2(hw: HardwareSpec) -> dict[str, float]:
    """Area (µm²) of one computation crossbar, by component."""
    c, a = hw.compute, {k: v.area_um2 for k, v in hw.components.items()}
    n_adc = c.cols // c.cols_per_adc
    # Control registers: per row and (+,-) column pair, one bit per column per digit (Table 6: 6 bits at S=2).
    reg_bits = c.rows * (c.cols // 2) * 2 * digits_of(c.encoding_s, c.act_bits)
    return {
        "dac": c.rows * per_bit(a["dac8"], c.weight_bits),
        "adc": n_adc * per_bit(a["adc8"], c.adc_bits),
        "cells": c.rows * c.cols * a["resistor_cell"],
        "control_registers": reg_bits * a["control_register_bit"],
        "shift_add": n_adc * a["shift_add"],
        "f_unit": n_adc * a["f_unit"],
        "encoder": a["encoder"],
    }


def dense_crossbar_um2(hw: HardwareSpec) -> dict[str, float]:
    """Area (µm²) of one dense crossbar, by component: a 1-bit DAC per column, an ADC per row."""
    d, a = hw.dense, {k: v.area_um2 for k, v in hw.components.items()}
    return {
        "cells": d.rows * d.cols * a["memristor_cell"],
        "dac": d.cols * a["dac1"],
        "adc_sense": d.rows * a["adc2_sense"],
        "registers": d.register_count * d.register_bits * a["control_register_bit"],
    }


def link_count(hw: HardwareSpec):
    """Buses needed between dense and computation crossbars to carry timing.dense_bw_gb_per_s."""
    bus = hw.components["link_bus"]
    if bus.rate_hz is None or bus.width_bits is None:
        raise ValueError("components.link_bus needs rate_hz and width_bits")
    return np.ceil(hw.timing.dense_bw_gb_per_s / (bus.rate_hz * bus.width_bits / 8 / 1e9))


def chip_um2(hw: HardwareSpec, n_dense: int) -> dict[str, float]:
    """Area (µm²) of the whole design holding `n_dense` dense crossbars, by part."""
    cache_bits = sum(hw.caches.capacity_bytes(c) * 8 for c in CACHES)
    return {
        "links": link_count(hw) * hw.components["link_bus"].area_um2,
        "compute_crossbars": hw.compute.n_crossbars * sum(compute_crossbar_um2(hw).values()),
        "dense_crossbars": n_dense * sum(dense_crossbar_um2(hw).values()),
        "caches": cache_bits * hw.components["cache_bit"].area_um2,
        "sqrt_div": hw.components["sqrt_div"].area_um2,
        "digital_unit": hw.chip.digital_mac_units * hw.components["digital_mac"].area_um2,
    }
