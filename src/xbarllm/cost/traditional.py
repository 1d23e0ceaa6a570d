"""Traditional crossbars (Fig. 12's MB and SB; Fig. 13's ISAAC, PRIME, PipeLayer and Vesti): area, energy
and latency of a workload table.

WS products use crossbars that hold the weights for good (or, for a streamed design, two buffers
refilled from off-chip for every op). NW products write their activation
operand Y (all `count` instances at once) into a pool of spare crossbars first. Ones-vector
operands are constant: one pinned set serves every instance, which then stream through it in turn.
Per op, crossbars run in parallel: each input vector takes ceil(act_bits / dac_bits) crossbar cycles
(the shared ADC converts its columns in each); ops run one after another, as in our cost model.
Converter, cell, register and cache figures are the proposed design's components (ISAAC's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xbarllm.cost.events import digital_events, done_fraction
from xbarllm.errors import XbarError
from xbarllm.mapping.area import chip_um2, per_bit
from xbarllm.spec.hardware import HardwareSpec
from xbarllm.spec.platform import TraditionalSpec
from xbarllm.workload import columns as C

# Component name in the hardware spec -> what it is charged per.
COMPONENTS = {
    "dac": "dac8",                        # row driven per input vector and crossbar
    "adc": "adc8",                        # column conversion
    "cells": "memristor_cell",            # cell read (scaled by the resistance rule)
    "input_registers": "control_register_bit",  # input bit written into a crossbar's row register
    "shift_add": "shift_add",             # bit-slice and row-tile recombination per output
    "writes": None,                       # cell programmed for an NW operand (spec's write energy)
    "weight_stream": None,                # weight bit streamed in from off-chip (streamed designs)
    "f_unit": "f_unit",
    "sqrt_div": "sqrt_div",
    "caches": "cache_bit",
}


def crossbar_um2(t: TraditionalSpec, hw: HardwareSpec) -> dict[str, float]:
    """Area (µm²) of one traditional crossbar, by component."""
    a = {k: v.area_um2 for k, v in hw.components.items()}
    n_adc = t.cols // t.cols_per_adc
    return {
        "dac": t.rows * per_bit(a["dac8"], t.dac_bits),
        "adc": n_adc * per_bit(a["adc8"], t.adc_bits),
        "cells": t.rows * t.cols * (t.cell_area_um2 or a["memristor_cell"]),
        "input_registers": t.rows * t.act_bits * a["control_register_bit"],
        "shift_add": a["shift_add"],  # one recombination unit and one F unit per crossbar, shared by its
        "f_unit": a["f_unit"],        # columns (designs with a converter per column keep one of each)
    }


def estimate_traditional(table: pd.DataFrame, t: TraditionalSpec, hw: HardwareSpec) -> dict[str, object]:
    """Totals (area mm², energy mJ, latency µs, crossbars) and per-component energy (pJ) of the table on `t`."""
    count, M, K, N = (table[x].to_numpy(np.float64) for x in (C.COUNT, C.M, C.K, C.N))
    done = done_fraction(table)
    slices = t.cells_per_weight()
    cols_per_out = t.cols_per_slice * slices
    cycles = t.cycles_per_vector()
    row_tiles = np.ceil(K / t.rows)
    col_tiles = np.ceil(N * cols_per_out / t.cols)
    ones = (table[C.Y_CACHE] == "ones").to_numpy()
    written = (table[C.KIND] == "NW").to_numpy() & ~ones
    if written.any() and (t.write_energy_pj_per_cell is None or t.write_ns_per_row is None):
        raise XbarError(f"{t.name}: runs WS products only (no write figures); pass the table's WS rows")
    xbars = np.where(ones, 1.0, count) * row_tiles * col_tiles
    ws = ~written & ~ones
    if t.weights_streamed:  # two buffers of the largest op's weights, refilled for every op
        held = 2 * float(xbars[ws].max(initial=0.0)) + float(xbars[ones].max(initial=0.0))
    else:
        held = float(xbars[ws].sum()) + float(xbars[ones].max(initial=0.0))
    pool = float(xbars[written].max(initial=0.0))

    vectors = count * M * done
    steps = vectors * cycles  # crossbar cycles: one per input slice of each vector
    ev = {
        "dac": steps * K * col_tiles,
        "adc": steps * N * cols_per_out * row_tiles,
        "cells": steps * K * N * cols_per_out,
        "input_registers": vectors * K * t.act_bits * col_tiles,
        "shift_add": steps * N * row_tiles * slices,
        "writes": np.where(written, count * K * N * cols_per_out, 0.0),
        "weight_stream": np.where(ws, table[C.WEIGHT_BYTES].to_numpy(np.float64) * 8, 0.0) * t.weights_streamed,
        **digital_events(table),
    }
    comp = hw.components
    per_event = {k: comp[v].energy_pj if v else 0.0 for k, v in COMPONENTS.items()}
    per_event["writes"] = t.write_energy_pj_per_cell or 0.0
    per_event["weight_stream"] = t.stream_pj_per_bit
    per_event["cells"] *= t.read_energy_scale()
    per_event["dac"] *= 2.0 ** (t.dac_bits - 8)  # ISAAC scaling from the 8-bit part
    per_event["adc"] *= 2.0 ** (t.adc_bits - 8)
    energy = pd.DataFrame({k: ev[k] * per_event[k] for k in COMPONENTS}, index=table.index)

    cycle_ns = max(hw.timing.xbar_cycle_ns, t.cols_per_adc / hw.timing.adc_rate_gsps)  # ADC serves its columns
    write_ns = np.where(written, np.minimum(K, t.rows) * (t.write_ns_per_row or 0.0), 0.0)
    cache_ns = ev["caches"] / 8 / hw.timing.cache_bw_gb_per_s
    serial = np.where(ones, count, 1.0) * M * done * cycles  # input cycles one after another
    stream_ns = ev["weight_stream"] / 8 / t.stream_gb_per_s if t.weights_streamed else 0.0
    latency_ns = np.maximum(np.maximum(serial * cycle_ns + write_ns, cache_ns), stream_ns)

    shared = chip_um2(hw, n_dense=0)
    area_um2 = (held + pool) * sum(crossbar_um2(t, hw).values()) + shared["caches"] + shared["sqrt_div"]
    e_pj, t_ns = float(energy.to_numpy().sum()), float(latency_ns.sum())
    model_macs = float(table.loc[~table[C.AUX], C.MACS].sum())
    return {
        "area_mm2": area_um2 / 1e6,
        "energy_mj": e_pj * 1e-9,
        "latency_us": t_ns * 1e-3,
        "adp_mm2_s": area_um2 / 1e6 * t_ns * 1e-9,
        "pj_per_mac": e_pj / model_macs if model_macs else float("nan"),
        "crossbars": held + pool,
        "energy_pj": energy.sum().to_dict(),
    }
