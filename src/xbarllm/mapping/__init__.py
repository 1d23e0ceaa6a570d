"""Mapping: the sub-operation table × a hardware spec -> tiles, sessions, cycles, caches, banks, chips.

Dataflow (paper §5.5, Fig. 9): in a session, one column of Y (K elements, S rows each) drives a
crossbar's rows through the DACs; d_c activations sit in (+,-) column pairs and are processed in
parallel, one digit per cycle. A K-long column spans `row_tiles` crossbars. Independent
(session, row tile) units spread over the pool of `n_crossbars`; the pool is reused in rounds.
Ops of the blocks named `digital` run on a digital MAC unit instead and take no crossbar cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from xbarllm.errors import XbarError
from xbarllm.mapping import columns as MC
from xbarllm.mapping.area import chip_um2
from xbarllm.mapping.encoding import digits, digits_of, elements_per_crossbar
from xbarllm.spec.hardware import HardwareSpec
from xbarllm.workload import columns as C


@dataclass
class Mapping:
    """Result of mapping one workload table onto one hardware spec."""

    ops: pd.DataFrame        # the sub-operation table plus the columns of `mapping.columns`
    caches: pd.DataFrame     # one row per cache: need (typical, maximum) vs capacity, in bytes
    area_um2: dict[str, float]
    totals: dict[str, float | int | bool]
    hardware: HardwareSpec


def _ceil_div(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    return -(-a // b)


def op_mapping(ops, hw) -> dict[str, np.ndarray]:
    """Per-op tiles, crossbars, rounds and digit cycles (the `mapping.columns`), from the table's columns.

    `ops` is the table (or a dict of its columns), with a `digital` column if some ops run on the digital
    unit; `hw` a spec, or stacked specs (`spec.stacked`), in which case every result is a (points × ops)
    array."""
    c = hw.compute
    count, M, K, N = (np.asarray(ops[x], np.int64) for x in (C.COUNT, C.M, C.K, C.N))
    k_per = elements_per_crossbar(c.rows, c.encoding_s, c.copies)
    row_tiles = _ceil_div(K, k_per)
    groups = _ceil_div(M, c.d_c)
    units = count * N * row_tiles
    xbars = np.minimum(units, c.n_crossbars)
    rounds = _ceil_div(units, xbars)
    dig = digits_of(c.encoding_s, c.act_bits)
    # Causal ops skip masked passes: the work shrinks by the computed fraction of the box.
    done = np.asarray(ops[C.MACS], np.float64) / (count * M * K * N).astype(np.float64)
    passes = np.ceil(rounds * groups * done - 1e-9).astype(np.int64)
    digital = np.asarray(ops[MC.DIGITAL], bool) if MC.DIGITAL in ops else np.zeros(len(count), bool)
    shape = np.broadcast_shapes(np.shape(units), np.shape(k_per))
    cols = {MC.DIGITAL: digital, MC.DIGITS: dig, MC.K_PER_XBAR: k_per, MC.ROW_TILES: row_tiles,
            MC.ACT_GROUPS: groups, MC.UNITS: units, MC.XBARS: np.where(digital, 0, xbars), MC.ROUNDS: rounds,
            MC.CYCLES: np.where(digital, 0, passes * dig)}
    return {k: np.broadcast_to(v, shape) for k, v in cols.items()}


def map_ops(table: pd.DataFrame, hw: HardwareSpec, digital: tuple[str, ...] = ()) -> pd.DataFrame:
    """The table plus the `mapping.columns`: per-op tiles, crossbars, rounds and digit cycles; ops of the
    `digital` blocks (e.g. "head") go to the digital MAC unit (`chip.digital_mac_units` must be > 0)."""
    blocks = list(dict.fromkeys(table[C.BLOCK]))
    bad = [b for b in digital if b not in blocks]
    if bad:
        raise XbarError(f"digital: no block '{bad[0]}' in {table.attrs.get('model', 'the model')} "
                        f"(blocks: {', '.join(blocks)})")
    if digital and hw.chip.digital_mac_units == 0:
        raise XbarError(f"digital: {hw.name} has no digital unit (chip.digital_mac_units is 0); set it, "
                        f"e.g. --set chip.digital_mac_units=1024")
    return table.assign(**op_mapping(table.assign(**{MC.DIGITAL: table[C.BLOCK].isin(digital)}), hw))


def dense_crossbars(table: pd.DataFrame, hw) -> int | np.ndarray:
    """Dense crossbars that store every parameter of the model at its weight bit width."""
    stored_bits = table.attrs["params"]["total"] * table.attrs["weight_bits"]
    return -(-stored_bits // hw.dense.capacity_bits)


def cache_needs(table: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """Bytes each cache must hold, per Table 5, against the spec's capacity.

    ls = tokens in flight (D1/D2 hold ls·d_model); attention runs one sequence and one head at
    a time, so T1/T2 hold ls_kv·ck (typical) up to ls_kv·heads·head_dim (maximum) and S holds
    ls_q·ls_kv. The FFN's d_ff-wide intermediate is assumed produced and consumed in column
    phases, so D1/D2 stay at ls·d_model. A decode pass also reports its KV cache, for which the
    paper's architecture names no store.
    """
    a = table.attrs
    ab = a["act_bits"] / 8
    qk = table[table[C.OP] == "qk"]
    q = table[table[C.OP] == "q_proj"]
    group = q[C.N].max() // a["head_dim"] // (a["kv_dim"] // a["head_dim"]) if len(q) else 1
    ls_kv = int(qk[C.N].max()) if len(qk) else 0
    s_need = int((qk[C.M] * qk[C.N]).max() // group) if len(qk) else 0
    attn_width = int(q[C.N].max()) if len(q) else 0
    d_need = a["tokens"] * a["d_model"]
    cap = hw.caches.capacity_bytes
    rows = [
        ("D1", d_need, d_need, cap("D1")), ("D2", d_need, d_need, cap("D2")),
        ("T1", ls_kv * hw.caches.ck_cols, ls_kv * attn_width, cap("T1")),
        ("T2", ls_kv * hw.caches.ck_cols, ls_kv * attn_width, cap("T2")),
        ("S", s_need, s_need, cap("S")),
    ]
    if a["phase"] == "decode":  # K and V of every cached token, all layers
        kv = 2 * int((qk[C.COUNT] * qk[C.K] * qk[C.N]).sum())
        rows.append(("KV", kv, kv, None))
    df = pd.DataFrame(rows, columns=["cache", "need_typical_bytes", "need_max_bytes", "capacity_bytes"])
    for col in ("need_typical_bytes", "need_max_bytes"):
        df[col] = np.ceil(df[col] * ab).astype(np.int64)
    df["capacity_bytes"] = df["capacity_bytes"].astype("Int64")
    df["fits"] = (df["need_typical_bytes"] <= df["capacity_bytes"]).astype("boolean")
    return df


def map_workload(table: pd.DataFrame, hw: HardwareSpec, digital: tuple[str, ...] = ()) -> Mapping:
    """Map a sub-operation table onto hardware: per-op tiles and cycles, caches, dense banks, chips; the
    `digital` blocks run on the digital MAC unit (see `map_ops`)."""
    ops = map_ops(table, hw, digital)
    caches = cache_needs(table, hw)
    params = table.attrs["params"]
    stored_bits = params["total"] * table.attrs["weight_bits"]
    n_dense = int(dense_crossbars(table, hw))
    area = chip_um2(hw, n_dense)
    area_mm2 = sum(area.values()) / 1e6
    model_rows = ~ops[C.AUX]
    totals: dict[str, float | int | bool] = {
        "ops": len(ops),
        "macs": int(ops[C.MACS].sum()),
        "digital_macs": int(ops.loc[ops[MC.DIGITAL], C.MACS].sum()),
        "model_macs": int(ops.loc[model_rows, C.MACS].sum()),
        "aux_macs": int(ops.loc[~model_rows, C.MACS].sum()),
        "sessions": int(ops[C.SESSIONS].sum()),
        "xbar_cycles": int(ops[MC.CYCLES].sum()),
        "peak_xbars_used": int(ops[MC.XBARS].max()),
        "weight_traffic_bytes": int(ops[C.WEIGHT_BYTES].sum()),
        "act_in_bytes": int(ops[C.ACT_IN_BYTES].sum()),
        "act_out_bytes": int(ops[C.ACT_OUT_BYTES].sum()),
        "sqrt_div_calls": int(ops[C.SQRT_DIV].sum()),
        "stored_params": int(params["total"]),
        "stored_bytes": math.ceil(stored_bits / 8),
        "dense_crossbars": n_dense,
        "compute_crossbars": hw.compute.n_crossbars,
        "d_c": hw.compute.d_c,
        "digits": digits(hw.compute.encoding_s, hw.compute.act_bits),
        "caches_fit": bool(caches["fits"].dropna().all()),  # KV has no store to fit in
        "area_mm2": area_mm2,
        "chips": math.ceil(area_mm2 / (hw.chip.area_cap_mm2 * hw.chip.stacked_layers)),
    }
    return Mapping(ops=ops, caches=caches, area_um2=area, totals=totals, hardware=hw)


map = map_workload  # the name the issue gives: xbarllm.mapping.map(table, hardware)


def by_block(ops: pd.DataFrame) -> pd.DataFrame:
    """Per-block sums of a mapped table: ops, MACs, sessions, digit cycles and weight bytes."""
    g = ops.groupby(C.BLOCK, sort=False)
    return pd.DataFrame({
        "ops": g.size(),
        C.MACS: g[C.MACS].sum(),
        C.SESSIONS: g[C.SESSIONS].sum(),
        MC.CYCLES: g[MC.CYCLES].sum(),
        C.WEIGHT_BYTES: g[C.WEIGHT_BYTES].sum(),
    }).reset_index()
