"""Event counts per sub-operation and component: conversions, cell reads, bits moved (Fig. 9 dataflow).

In session t, the K weights of column t drive the rows (S rows per element, times `copies`) of
`row_tiles` crossbars; every activation row passes through digit by digit, lighting S cells (per copy) of
one column of its (+,-) pair per element; both columns of each pair are converted by the shared ADC per
digit.
Causal ops do only the computed fraction of this work. Ops mapped to the digital unit have none of the
crossbar events and one digital MAC per MAC instead; weights, caches and F are the same either way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xbarllm.mapping import columns as MC
from xbarllm.spec.hardware import HardwareSpec
from xbarllm.workload import columns as C

# Component name in the hardware spec -> the event it is charged per.
COMPONENTS = {
    "cells": "resistor_cell",            # conducting resistor per digit cycle
    "adc": "adc8",                       # column conversion
    "dac": "dac8",                       # row driven per crossbar cycle
    "control_registers": "control_register_bit",  # activation-state bit written
    "shift_add": "shift_add",            # digit recombination per output, tile and digit
    "f_unit": "f_unit",                  # element-wise F per output element
    "encoder": "encoder",                # activation element recoded to balanced digits
    "sqrt_div": "sqrt_div",              # LayerNorm square root and divide
    "dense_cells": "memristor_cell",     # dense crossbar cell read
    "dense_adc": "adc2_sense",           # 2-bit conversion with sense amplifier
    "dense_dac": "dac1",                 # dense column enable
    "link": "link_bus",                  # bit moved from dense to computation crossbars
    "caches": "cache_bit",               # activation bit read or written in D1/D2/T1/T2/S
    "digital_mac": "digital_mac",        # MAC on the digital unit (ops of `digital` blocks)
}
CROSSBAR_EVENTS = ("cells", "adc", "dac", "control_registers", "shift_add", "encoder")


def _f(ops, name: str) -> np.ndarray:
    return np.asarray(ops[name], np.float64)


def done_fraction(ops) -> np.ndarray:
    """Computed fraction of each op's count × M×K×N box (below 1 for causal ops)."""
    return _f(ops, C.MACS) / np.prod([_f(ops, x) for x in (C.COUNT, C.M, C.K, C.N)], axis=0)


def digital_events(ops) -> dict[str, np.ndarray]:
    """Events of the digital side, the same on any crossbar design: F per output element, sqrt/divide
    calls, and activation bits moved through the caches."""
    return {
        "f_unit": _f(ops, C.COUNT) * _f(ops, C.M) * _f(ops, C.N) * done_fraction(ops),
        "sqrt_div": _f(ops, C.SQRT_DIV),
        "caches": (_f(ops, C.ACT_IN_BYTES) + _f(ops, C.ACT_OUT_BYTES)) * 8,
    }


def event_arrays(ops, hw: HardwareSpec) -> dict[str, np.ndarray]:
    """Events per component (keys of COMPONENTS) and op, from a mapped table or a dict of its columns.

    With stacked specs (`spec.stacked`) and (points × ops) mapping columns, every array is points × ops."""
    c, d = hw.compute, hw.dense
    count, M, K, N = (_f(ops, x) for x in (C.COUNT, C.M, C.K, C.N))
    S, digits = np.asarray(c.encoding_s * c.copies, np.float64), _f(ops, MC.DIGITS)  # rows per element
    tiles, groups = _f(ops, MC.ROW_TILES), _f(ops, MC.ACT_GROUPS)
    done = done_fraction(ops)
    sessions = count * N
    weight_bits = _f(ops, C.WEIGHT_BYTES) * 8
    col_reads = np.ceil(weight_bits / (d.rows * d.bits_per_cell))  # one dense column per read
    ev = {
        "cells": sessions * M * K * S * digits * done,
        "adc": 2 * sessions * M * tiles * digits * done,
        "dac": sessions * K * S * groups * digits * done,
        "control_registers": sessions * M * K * 2 * S * digits * done,
        "shift_add": sessions * M * tiles * digits * done,
        "encoder": count * M * K,
        "dense_cells": col_reads * d.rows,
        "dense_adc": col_reads * d.rows,
        "dense_dac": col_reads,
        "link": weight_bits,
        **digital_events(ops),
    }
    on_chip = ~np.asarray(ops[MC.DIGITAL], bool)
    ev.update({k: ev[k] * on_chip for k in CROSSBAR_EVENTS})
    ev["digital_mac"] = _f(ops, C.MACS) * ~on_chip
    shape = np.broadcast_shapes(*(np.shape(v) for v in ev.values()))
    return {k: np.broadcast_to(ev[k], shape) for k in COMPONENTS}


def event_counts(ops: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Events per op (rows) and component (columns, the keys of COMPONENTS), as floats."""
    return pd.DataFrame(event_arrays(ops, hw), index=ops.index)
