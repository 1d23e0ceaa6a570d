"""Cost model: area, energy and latency per component, per op, per layer and in total.

Energy = Σ events × energy per event (component data in the hardware YAML).
Latency of an op (Fig. 9): the digit cycles on the critical path, each as long as the slower of a
crossbar read and the shared ADC converting its 2·d_c columns, overlapped with streaming the
op's weights from the dense crossbars (B_w) and its activations through the caches (B_a); the
op takes the longest of the three. Ops run one after another. An op on the digital unit computes at
chip.digital_mac_units × the unit's rate_hz MACs per second instead of in digit cycles.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd

from xbarllm import mapping
from xbarllm.cost.events import COMPONENTS, event_arrays, event_counts
from xbarllm.mapping import Mapping
from xbarllm.mapping import columns as MC
from xbarllm.mapping.area import chip_um2
from xbarllm.spec.hardware import HardwareSpec
from xbarllm.spec.stacked import stack
from xbarllm.workload import columns as C

ID_COLS = [C.STACK, C.LAYER, C.BLOCK, C.OP, C.KIND]
LIMITS = ("compute", "weights", "cache")


@dataclass
class Estimate:
    """Cost of one mapped workload. Energies in pJ, times in ns, areas in µm² (totals: mJ, µs, mm²)."""

    energy_pj: pd.DataFrame   # ops × components
    latency_ns: pd.DataFrame  # ops × (compute, weights, cache, latency) plus the binding limit
    per_layer: pd.DataFrame   # (stack, layer) -> energy_pj, latency_ns
    per_block: pd.DataFrame   # block (embed, mha, ffn, norm, head, …) -> energy_pj, latency_ns
    area_um2: dict[str, float]
    totals: dict[str, float]


def cycle_ns(hw: HardwareSpec) -> float:
    """Duration of one digit cycle: a crossbar read, or the ADC's 2·d_c conversions if slower (ns)."""
    adc_ns = 2 * hw.compute.d_c / hw.timing.adc_rate_gsps
    return np.maximum(hw.timing.xbar_cycle_ns, adc_ns)


def op_latency(ops, hw: HardwareSpec) -> dict[str, np.ndarray]:
    """Per op, the time (ns) each limit of LIMITS needs: digit cycles (or digital MACs), weight streaming,
    cache traffic."""
    t = hw.timing
    digital_macs = np.asarray(ops[C.MACS], np.float64) * np.asarray(ops[MC.DIGITAL], bool)
    mac_per_ns = hw.chip.digital_mac_units * hw.components["digital_mac"].rate_hz * 1e-9
    digital_ns = digital_macs / np.maximum(mac_per_ns, 1e-30)  # no unit: mapping put no MACs on it
    return {
        "compute": np.asarray(ops[MC.CYCLES], np.float64) * cycle_ns(hw) + digital_ns,
        "weights": np.asarray(ops[C.WEIGHT_BYTES], np.float64) / t.dense_bw_gb_per_s,
        "cache": (np.asarray(ops[C.ACT_IN_BYTES], np.float64) + np.asarray(ops[C.ACT_OUT_BYTES], np.float64))
        / t.cache_bw_gb_per_s,
    }


def lower_bound_ns(ops: pd.DataFrame, hw: HardwareSpec) -> dict[str, float]:
    """Eq. 8: T_LB = max(activation bytes read / B_a, weight bytes / B_w), in ns (GB/s = bytes/ns)."""
    t_a = float(ops[C.ACT_IN_BYTES].sum()) / hw.timing.cache_bw_gb_per_s
    t_w = float(ops[C.WEIGHT_BYTES].sum()) / hw.timing.dense_bw_gb_per_s
    return {"t_lb_act_ns": t_a, "t_lb_weight_ns": t_w, "t_lb_ns": max(t_a, t_w)}


def estimate(mapped: Mapping, hw: HardwareSpec | None = None) -> Estimate:
    """Area (µm²), energy (pJ) and latency (ns) of a mapped workload, per component/op/layer/total."""
    hw = hw or mapped.hardware
    ops = mapped.ops
    events = event_counts(ops, hw)
    energy = events * np.array([hw.components[COMPONENTS[k]].energy_pj for k in events.columns])
    lat = pd.DataFrame(op_latency(ops, hw), index=ops.index)
    lat["bound"] = lat[list(LIMITS)].idxmax(axis=1)
    lat["latency"] = lat[list(LIMITS)].max(axis=1)
    keyed = ops[[C.STACK, C.LAYER, C.BLOCK]].assign(energy_pj=energy.sum(axis=1), latency_ns=lat["latency"])
    sums = ["energy_pj", "latency_ns"]
    per_layer = keyed.groupby([C.STACK, C.LAYER], sort=False)[sums].sum().reset_index()
    per_block = keyed.groupby(C.BLOCK, sort=False)[sums].sum().reset_index()

    model_macs = float(ops.loc[~ops[C.AUX], C.MACS].sum())
    e_total, t_total = float(energy.to_numpy().sum()), float(lat["latency"].sum())
    area_mm2 = sum(mapped.area_um2.values()) / 1e6
    lb = lower_bound_ns(ops, hw)
    totals = {
        "energy_mj": e_total * 1e-9,
        "latency_us": t_total * 1e-3,
        "area_mm2": area_mm2,
        "adp_mm2_s": area_mm2 * t_total * 1e-9,
        "pj_per_mac": e_total / model_macs if model_macs else float("nan"),
        **{f"energy_{k}_mj": float(v) * 1e-9 for k, v in energy.sum().items()},
        **{f"time_{k}_bound_us": float(lat.loc[lat["bound"] == k, "latency"].sum()) * 1e-3 for k in LIMITS},
        "t_lb_act_us": lb["t_lb_act_ns"] * 1e-3,
        "t_lb_weight_us": lb["t_lb_weight_ns"] * 1e-3,
        "t_lb_us": lb["t_lb_ns"] * 1e-3,
        "latency_over_t_lb": t_total / lb["t_lb_ns"] if lb["t_lb_ns"] else float("nan"),
    }
    return Estimate(energy_pj=energy, latency_ns=lat, per_layer=per_layer, per_block=per_block,
                    area_um2=dict(mapped.area_um2), totals=totals)


def totals_many(table: pd.DataFrame, specs: list[HardwareSpec] | SimpleNamespace) -> dict[str, np.ndarray]:
    """Area (mm²), energy (mJ), latency (µs), ADP (mm²·s), pJ per model MAC and chips of one workload on
    many hardware specs at once (a list, or already stacked by `spec.stacked`), one value per spec; the
    same formulas as `estimate`, vectorised."""
    hw = stack(specs) if isinstance(specs, list) else specs
    cols = {c: table[c].to_numpy() for c in (C.COUNT, C.M, C.K, C.N, C.MACS, C.WEIGHT_BYTES, C.ACT_IN_BYTES,
                                             C.ACT_OUT_BYTES, C.SQRT_DIV)}
    cols.update(mapping.op_mapping(cols, hw))
    events = event_arrays(cols, hw)
    energy_pj = sum(events[k].sum(axis=1) * hw.components[COMPONENTS[k]].energy_pj[:, 0] for k in events)
    lat = op_latency(cols, hw)
    latency_ns = np.maximum(np.maximum(lat["compute"], lat["weights"]), lat["cache"]).sum(axis=1)
    area_mm2 = sum(chip_um2(hw, mapping.dense_crossbars(table, hw)).values())[:, 0] / 1e6
    model_macs = float(table.loc[~table[C.AUX], C.MACS].sum())
    return {
        "area_mm2": area_mm2,
        "energy_mj": energy_pj * 1e-9,
        "latency_us": latency_ns * 1e-3,
        "adp_mm2_s": area_mm2 * latency_ns * 1e-9,
        "pj_per_mac": energy_pj / model_macs if model_macs else np.full(len(area_mm2), np.nan),
        "chips": np.ceil(area_mm2 / (hw.chip.area_cap_mm2 * hw.chip.stacked_layers)[:, 0]),
    }
