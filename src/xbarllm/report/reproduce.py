"""Paper-vs-ours rows for Wang et al. 2024: Tables 7, 10, 11 and Figs. 12, 13 (our curve) and 14.

Every row is computed here from the specs; the paper's numbers are the comparison targets only.
Where ours differs from the paper by more than 30 %, the row names the assumption that drives it.
Vesti is modelled from recalled structure and an assumed off-chip stream (see the vesti preset).
"""

from __future__ import annotations

from dataclasses import dataclass

from xbarllm import cost, mapping
from xbarllm.cost.roofline import pinned_area_mm2, roofline
from xbarllm.cost.traditional import estimate_traditional
from xbarllm.mapping.encoding import digits, scale_cycle_product
from xbarllm.spec import HardwareSpec, load_hardware, load_model
from xbarllm.spec.platform import load_platform
from xbarllm.workload import build, param_inventory
from xbarllm.workload import columns as C

SEQ_LEN = 256  # Table 5/6 size the caches for 256 tokens; the paper's BERT runs use it (77.3 G ops)
TABLE7_CYCLES = [6, 3, 3, 2, 2, 2, 1]
TABLE7_SCALE_CYCLE = [6, 6, 9, 8, 10, 12, 7]
FIG14_MODELS = ["gpt2-xl", "t5-3b", "t5-11b", "llama-7b", "llama-13b", "llama-33b", "llama-65b", "gpt3-175b"]

DRIVERS = {
    "latency": "timing.xbar_cycle_ns (assumed 100 ns, ISAAC) and compute.n_crossbars (assumed 1024) set our latency",
    "area": "compute.n_crossbars (assumed 1024) and the ISAAC register area per bit (6 KB of control "
            "registers per crossbar) dominate our area",
    "roofline": "peak-rate roofline at efficiency 1.0 and the platform's full TDP; the paper's TPU/GPU "
                "settings are not published",
    "t_lb": "which activations Eq. 8 counts (α_a, S_a) and whether N_w is per layer or per model; the paper "
            "does not say; we count every activation read and every weight of the model once",
    "adp_s": "area at fixed n_crossbars: S changes only register area and row tiles, not the crossbar count",
    "fig12_area": "MB bits_per_cell (assumed 4), the pool of crossbars NW operands are written into, and "
                  "the matched-delay d_c; the paper's ratios average 4 models (2 ResNets not modelled)",
    "fig12_energy": "cell read energy: the paper gives no resistance; MB/SB cells read at ISAAC's 1.83 fJ "
                    "scaled by the equal-accuracy rule (rtn_resistance_exponent, assumed 1.0), and NW writes "
                    "at an assumed 1 pJ per pulse; the 'implied cell read energy' row shows what the paper's "
                    "ratio needs",
    "isaac": "ISAAC chips hold 16-bit weights in the original design; we store the 8-bit weights of the "
             "comparison (paper §7)",
}


@dataclass
class Row:
    item: str
    paper: float | None
    ours: float
    driver: str = ""

    @property
    def ratio(self) -> float | None:
        return self.ours / self.paper if self.paper else None

    def as_dict(self) -> dict[str, object]:
        """The four keys of the reproduction JSON."""
        return {"item": self.item, "paper": self.paper, "ours": self.ours, "ratio": self.ratio}

    @property
    def note(self) -> str:
        """The driving assumption, shown only when ours and the paper differ by more than 30 %."""
        r = self.ratio
        return self.driver if r is not None and abs(r - 1) > 0.3 else ""


def _estimate(name: str, hw: HardwareSpec) -> cost.Estimate:
    return cost.estimate(mapping.map(build(load_model(name), seq_len=SEQ_LEN), hw), hw)


def table7(hw: HardwareSpec) -> list[Row]:
    """Cycles and scale-cycle product for S = 1..7, and BERT-Base area-delay product vs S."""
    rows = []
    for s in range(1, 8):
        rows.append(Row(f"Table 7 cycles S={s}", TABLE7_CYCLES[s - 1], digits(s, hw.compute.act_bits)))
        rows.append(Row(f"Table 7 scale-cycle product S={s}", TABLE7_SCALE_CYCLE[s - 1],
                        scale_cycle_product(s, hw.compute.act_bits)))
    adp = {s: _estimate("bert-base", hw.with_updates({"compute.encoding_s": s})).totals["adp_mm2_s"]
           for s in range(1, 8)}
    for s in range(2, 8):
        rows.append(Row(f"Table 7 BERT-Base ADP(S={s}) / ADP(S=1)", 0.91 if s == 2 else None,
                        adp[s] / adp[1], DRIVERS["adp_s"]))
    return rows


def table10(hw: HardwareSpec) -> list[Row]:
    """BERT-Large ADP (mm²·s) and energy (mJ) for TPUv4, A100 and ours, and our pJ per operation."""
    table = build(load_model("bert-large"), seq_len=SEQ_LEN)
    ours = cost.estimate(mapping.map(table, hw), hw).totals
    rows = []
    for name, paper_adp, paper_e in (("tpuv4", 2.24, 71.71), ("a100", 2.04, 65.84)):
        r = roofline(table, load_platform(name), node_nm=hw.node_nm)
        rows += [Row(f"Table 10 {name} ADP (mm2·s, area at 32 nm)", paper_adp, r["adp_mm2_s"], DRIVERS["roofline"]),
                 Row(f"Table 10 {name} energy (mJ)", paper_e, r["energy_mj"], DRIVERS["roofline"])]
    rows += [Row("Table 10 ours ADP (mm2·s)", 0.03, ours["adp_mm2_s"], DRIVERS["latency"]),
             Row("Table 10 ours energy (mJ)", 20.44, ours["energy_mj"], DRIVERS["area"]),
             Row("Table 10 ours pJ per operation (operation = MAC)", 0.27, ours["pj_per_mac"], DRIVERS["area"])]
    return rows


def table11(hw: HardwareSpec) -> list[Row]:
    """Eq. 8 lower bounds (µs), reading Table 11 row by row: T_a = 16.1, 17.3; T_w = 2.7, 4.3."""
    paper = {"bert-base": (16.1, 2.7), "bert-large": (17.3, 4.3)}
    rows = []
    for name, (p_a, p_w) in paper.items():
        t = _estimate(name, hw).totals
        rows += [Row(f"Table 11 {name} T_LB activation (us)", p_a, t["t_lb_act_us"], DRIVERS["t_lb"]),
                 Row(f"Table 11 {name} T_LB weight (us)", p_w, t["t_lb_weight_us"], DRIVERS["t_lb"])]
    return rows


FIG13_DC = (1, 2, 4, 8, 16, 32, 64)


def dc_design(hw: HardwareSpec, d_c: int) -> HardwareSpec:
    """The design with column duplication d_c: each computation crossbar builds 2·d_c columns
    ((+,-) pairs) sharing one ADC, so area grows and cycles shrink with d_c."""
    return hw.with_updates({"compute.d_c": d_c, "compute.cols": 2 * d_c, "compute.cols_per_adc": 2 * d_c})


FIG13_BASELINES = ("isaac-crossbar", "prime", "pipelayer", "vesti")


def fig13(hw: HardwareSpec) -> list[Row]:
    """Our area (mm²) vs latency (µs) curve over d_c, with energy (mJ), for BERT-Base and BERT-Large, and the
    WS part (the only part they can run) on ISAAC, PRIME and PipeLayer next to ours on the same WS part.

    The paper draws these without tabulating them, so the rows carry no paper value."""
    rows = []
    for name in ("bert-base", "bert-large"):
        table = build(load_model(name), seq_len=SEQ_LEN)
        ws = table[table[C.KIND] == "WS"]
        for d_c in FIG13_DC:
            design = dc_design(hw, d_c)
            t = cost.estimate(mapping.map(table, design)).totals
            t_ws = cost.estimate(mapping.map(ws, design)).totals
            rows += [Row(f"Fig. 13 {name} d_c={d_c} area (mm2)", None, t["area_mm2"]),
                     Row(f"Fig. 13 {name} d_c={d_c} latency (us)", None, t["latency_us"]),
                     Row(f"Fig. 13 {name} d_c={d_c} energy (mJ)", None, t["energy_mj"]),
                     Row(f"Fig. 13 {name} d_c={d_c} WS part latency (us)", None, t_ws["latency_us"]),
                     Row(f"Fig. 13 {name} d_c={d_c} WS part energy (mJ)", None, t_ws["energy_mj"])]
        for base in FIG13_BASELINES:
            r = estimate_traditional(ws, load_platform(base), hw)
            rows += [Row(f"Fig. 13 {name} {base} WS part area (mm2)", None, r["area_mm2"]),
                     Row(f"Fig. 13 {name} {base} WS part latency (us)", None, r["latency_us"]),
                     Row(f"Fig. 13 {name} {base} WS part energy (mJ)", None, r["energy_mj"])]
    return rows


FIG12_PAPER = {"mb": (6.0, 18.0), "sb": (39.0, 3.0)}  # average area and energy ratios over 4 models


def fig12(hw: HardwareSpec) -> list[Row]:
    """Area and energy of MB and SB crossbars over ours, at matched delay, for BERT-Base and BERT-Large.

    Our d_c is tuned as in the paper: the smallest-area design (2·d_c columns per crossbar) whose
    latency does not exceed the baseline's; if none is fast enough, the fastest.
    """
    rows = []
    for name in ("bert-base", "bert-large"):
        table = build(load_model(name), seq_len=SEQ_LEN)
        ours = {d: cost.estimate(mapping.map(table, dc_design(hw, d))) for d in FIG13_DC}
        for base in ("mb", "sb"):
            t = load_platform(base)
            r = estimate_traditional(table, t, hw)
            fast = [d for d in FIG13_DC if ours[d].totals["latency_us"] <= r["latency_us"]]
            d = min(fast, key=lambda d: ours[d].totals["area_mm2"]) if fast else max(FIG13_DC)
            o = ours[d].totals
            p_area, p_energy = FIG12_PAPER[base]
            B = base.upper()
            cell_pj = hw.components["memristor_cell"].energy_pj * t.read_energy_scale()
            reads = r["energy_pj"]["cells"] / cell_pj
            implied = (p_energy * o["energy_mj"] * 1e9 - (r["energy_mj"] * 1e9 - r["energy_pj"]["cells"])) / reads
            rows += [Row(f"Fig. 12 {name} {B} latency (us)", None, r["latency_us"]),
                     Row(f"Fig. 12 {name} {B} matched ours d_c", None, d),
                     Row(f"Fig. 12 {name} {B} matched ours latency (us)", None, o["latency_us"]),
                     Row(f"Fig. 12 {name} {B} area (mm2)", None, r["area_mm2"]),
                     Row(f"Fig. 12 {name} {B} energy (mJ)", None, r["energy_mj"]),
                     Row(f"Fig. 12 {name} {B} area / ours", p_area, r["area_mm2"] / o["area_mm2"],
                         DRIVERS["fig12_area"]),
                     Row(f"Fig. 12 {name} {B} energy / ours", p_energy, r["energy_mj"] / o["energy_mj"],
                         DRIVERS["fig12_energy"]),
                     Row(f"Fig. 12 {name} {B} cell read energy used (fJ)", None, cell_pj * 1e3),
                     Row(f"Fig. 12 {name} {B} cell read energy implied by the paper's ratio (fJ)", None,
                         implied * 1e3)]
    return rows


def fig14(hw: HardwareSpec) -> list[Row]:
    """Area of ours vs ISAAC from GPT2-XL to GPT-3, and chips at 100 mm² × 128 stacked layers."""
    isaac = load_platform("isaac")
    stacked = hw.with_updates({"chip.area_cap_mm2": 100.0, "chip.stacked_layers": 128})
    rows = []
    for name in FIG14_MODELS:
        spec = load_model(name)
        m = mapping.map(build(spec, seq_len=SEQ_LEN), stacked)
        pinned = pinned_area_mm2(param_inventory(spec)["total"], hw.compute.weight_bits, isaac)
        big = name == "gpt3-175b"
        rows += [Row(f"Fig. 14 {name} ours area (mm2)", None, m.totals["area_mm2"]),
                 Row(f"Fig. 14 {name} ISAAC area / ours", 51.0 if big else None,
                     pinned["area_mm2"] / m.totals["area_mm2"], DRIVERS["isaac"]),
                 Row(f"Fig. 14 {name} ours chips at 100 mm2 x 128 layers", None, m.totals["chips"])]
        if big:
            rows.append(Row("Fig. 14 gpt3-175b ISAAC chips (paper §2: 2777)", 2777, pinned["chips"], DRIVERS["isaac"]))
    return rows


def reproduce(hw: HardwareSpec | None = None) -> list[Row]:
    """Every reproduced row, in paper order."""
    hw = hw or load_hardware("proposed")
    return table7(hw) + table10(hw) + table11(hw) + fig12(hw) + fig13(hw) + fig14(hw)


def assumptions(hw: HardwareSpec | None = None) -> list[dict[str, str]]:
    """The assumed (not taken or derived) knobs behind our values: field, value, source."""
    hw = hw or load_hardware("proposed")
    out = [{"field": k, "value": str(hw.get(k)), "source": v} for k, v in hw.sources.items()
           if v.startswith("assumed")]
    out += [{"field": f"components.{k}", "value": f"{c.area_um2} um2, {c.energy_pj} pJ", "source": c.source}
            for k, c in hw.components.items() if c.basis == "assumed"]
    out.append({"field": "seq_len", "value": str(SEQ_LEN), "source": "Table 5/6 cache sizing; 77.3 G ops"})
    out.append({"field": "Table 11 reading", "value": "row by row",
                "source": "spec §8.7: values run row by row (T_a: 16.1, 17.3; T_w: 2.7, 4.3)"})
    return out

