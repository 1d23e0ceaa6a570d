"""Event counts per sub-operation and component: conversions, cell reads, bits moved (Fig. 9 dataflow).

In session t, the K weights of column t drive the rows (S rows per element) of `row_tiles`
crossbars; every activation row passes through digit by digit, lighting S cells of one column of
its (+,-) pair per element; both columns of each pair are converted by the shared ADC per digit.
Causal ops do only the computed fraction of this work.
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
}


def done_fraction(ops: pd.DataFrame) -> np.ndarray:
    """Computed fraction of each op's count × M×K×N box (below 1 for causal ops)."""
    box = np.prod([ops[x].to_numpy(np.float64) for x in (C.COUNT, C.M, C.K, C.N)], axis=0)
    return ops[C.MACS].to_numpy(np.float64) / box


def digital_events(ops: pd.DataFrame) -> dict[str, np.ndarray]:
    """Events of the digital side, the same on any crossbar design: F per output element, sqrt/divide
    calls, and activation bits moved through the caches."""
    count, M, N = (ops[x].to_numpy(np.float64) for x in (C.COUNT, C.M, C.N))
    return {
        "f_unit": count * M * N * done_fraction(ops),
        "sqrt_div": ops[C.SQRT_DIV].to_numpy(np.float64),
        "caches": (ops[C.ACT_IN_BYTES] + ops[C.ACT_OUT_BYTES]).to_numpy(np.float64) * 8,
    }


def event_counts(ops: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Events per op (rows) and component (columns, the keys of COMPONENTS), as floats."""
    c, d = hw.compute, hw.dense
    count, M, K, N = (ops[x].to_numpy(np.float64) for x in (C.COUNT, C.M, C.K, C.N))
    S, digits = float(c.encoding_s), ops[MC.DIGITS].to_numpy(np.float64)
    tiles, groups = ops[MC.ROW_TILES].to_numpy(np.float64), ops[MC.ACT_GROUPS].to_numpy(np.float64)
    done = done_fraction(ops)
    sessions = count * N
    weight_bits = ops[C.WEIGHT_BYTES].to_numpy(np.float64) * 8
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
    return pd.DataFrame(ev, index=ops.index)[list(COMPONENTS)]
