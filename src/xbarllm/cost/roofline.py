"""GenZ-style roofline of the same sub-operation table on a TPU or GPU, and node scaling."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xbarllm.spec.platform import PinnedSpec, PlatformSpec
from xbarllm.workload import columns as C


def dennard_area_scale(area_mm2: float, from_nm: float, to_nm: float) -> float:
    """Area at another node by classical (Dennard) scaling: × (to_nm / from_nm)²."""
    return area_mm2 * (to_nm / from_nm) ** 2


def roofline(table: pd.DataFrame, platform: PlatformSpec, node_nm: float = 32) -> dict[str, float]:
    """Latency (µs), energy (mJ), area at `node_nm` (mm²) and ADP (mm²·s) of the table on a platform.

    Per op: time = max(2·MACs / (peak · efficiency), bytes / (bandwidth · efficiency)), with bytes =
    weights + activations read and written at the table's bit widths. The ones-vector sums and
    norm statistics the crossbar adds (aux rows) are not matrix products on a digital chip and are
    left out. Energy = time × power, at the platform's own node.
    """
    ops = table[~table[C.AUX]]
    flops = 2.0 * ops[C.MACS].to_numpy(np.float64)
    nbytes = (ops[C.WEIGHT_BYTES] + ops[C.ACT_IN_BYTES] + ops[C.ACT_OUT_BYTES]).to_numpy(np.float64)
    t_compute = flops / (platform.peak_int8_tops * 1e12 * platform.compute_efficiency)
    t_memory = nbytes / (platform.mem_bw_gb_per_s * 1e9 * platform.memory_efficiency)
    t = np.maximum(t_compute, t_memory)
    seconds = float(t.sum())
    area = dennard_area_scale(platform.die_area_mm2, platform.node_nm, node_nm)
    return {
        "latency_us": seconds * 1e6,
        "energy_mj": seconds * platform.power_w * 1e3,
        "area_mm2": area,
        "adp_mm2_s": area * seconds,
        "pj_per_mac": seconds * platform.power_w * 1e12 / float(ops[C.MACS].sum()),
        "memory_bound_fraction": float(t[t_memory > t_compute].sum() / seconds) if seconds else 0.0,
    }


def pinned_area_mm2(params: int, weight_bits: int, chip: PinnedSpec) -> dict[str, float]:
    """Area (mm²) and chips of a pinned-weight crossbar design holding `params` weights.

    Each crossbar carries its share of the chip (converters, buffers, routers): chip area /
    crossbars per chip. Crossbars = ceil(params × weight_bits / (rows × cols × bits per cell)).
    """
    cells_bits = chip.xbar_rows * chip.xbar_cols * chip.bits_per_cell
    xbars = -(-params * weight_bits // cells_bits)
    return {"crossbars": float(xbars), "chips": float(-(-xbars // chip.crossbars_per_chip)),
            "area_mm2": xbars * chip.chip_area_mm2 / chip.crossbars_per_chip}
