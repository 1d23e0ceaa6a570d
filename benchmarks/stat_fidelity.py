"""How closely mode xbar_stat reproduces the bit-level crossbar's error, product by product, on real inputs.

Records the integer operands of every product MiniLM sends to the chip for the first N STS-B test sentences
(or SmolLM2 for the first N WikiText-2 tokens), then runs each through both paths and prints, per product kind, the
squared error against the exact integer product, xbar_stat / bit level: summed over the kind's sites, and the
median and range over its sites; then the same over every product but the one-column ones ("all N > 1").
xbar_stat runs as its model (`stat_max_adc_share` 1) at every site; "handed over" counts the sites that a model run
gives to the bit level because ADC rounding carries most of their error (all of it without noise). Linears are
named by their attribute (query, q_proj, ...). Norm statistics (mean, meansq) and row sums run bit level in a
model; they are listed to show why.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import torch

import xbarllm.sim.modules as modules
from xbarllm.eval import data
from xbarllm.eval.models import minilm, smollm2
from xbarllm.eval.tasks import embed
from xbarllm.sim import SimConfig, xbar_matmul
from xbarllm.sim.stat import stat_matmul


def operands(model_name: str, n: int, cfg: SimConfig) -> list[tuple[torch.Tensor, torch.Tensor, str, str, list | None]]:
    """(x, y, product kind, site, ADC full scale) of every product of MiniLM on the first n STS-B test sentences, or of
    SmolLM2 on the first n WikiText-2 test tokens (ranges calibrated as `xbarllm simulate` does)."""
    if model_name == "minilm":
        tok, model = minilm()
        calibrate = lambda: embed(tok, model, data.stsb("dev")[0][:64])  # noqa: E731
        run = lambda: embed(tok, model, data.stsb("test")[0][:n])  # noqa: E731
    else:
        tok, model = smollm2()
        cal = tok(" ".join(data.sst2("train")[0][:40]), return_tensors="pt").input_ids[:, :256]
        ids = tok(data.wikitext2(), return_tensors="pt").input_ids[:, :n]
        calibrate, run = (lambda: model(cal)), (lambda: model(ids))
    chip = modules.install(model, cfg)
    chip.calibrate(calibrate)
    linears = {m.site: name.split(".")[-1] for name, m in model.named_modules() if isinstance(m, modules.XbarLinear)}
    seen = []
    chip.matmul = lambda x, y, site: seen.append(  # a Linear by its attribute name, others by product
        (x, y, linears.get(site, site.split(".")[-1]), site, chip.fullscale.get(site))) or x @ y
    with torch.no_grad():
        run()
    return seen


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="minilm", choices=["minilm", "smollm2"])
    ap.add_argument("--n", type=int, default=64, help="sentences (MiniLM) or tokens (SmolLM2)")
    ap.add_argument("--act-bits", type=int, default=8)
    ap.add_argument("--rtn", default="0,0.05,0.25")
    ap.add_argument("--overrange", default="clip", choices=["clip", "reconvert"])
    args = ap.parse_args()
    base = SimConfig(act_bits=args.act_bits, adc_overrange=args.overrange)
    calls = operands(args.model, args.n, base)
    for rtn in map(float, args.rtn.split(",")):
        cfg = base.model_copy(update={"rtn": rtn})
        model = cfg.model_copy(update={"stat_max_adc_share": 1.0})  # the model itself, never handed to the bit level
        per_site = defaultdict(lambda: torch.zeros(2, dtype=torch.float64))  # squared errors: bit, stat
        kinds, handed, wide = {}, set(), set()
        for i, (x, y, kind, site, fs) in enumerate(calls):
            stats: dict[str, int] = {}
            stat = stat_matmul(x, y, cfg, torch.Generator().manual_seed(i), fullscale=fs, stats=stats)
            if "over_range_unknown" not in stats:  # handed to the bit level; otherwise the same draws as `model`'s
                handed.add(site)
                stat = stat_matmul(x, y, model, torch.Generator().manual_seed(i), fullscale=fs)
            exact = x.double() @ y.double()
            bit = xbar_matmul(x, y, cfg, torch.Generator().manual_seed(i), fullscale=fs) - exact
            stat = stat.double() - exact
            per_site[site] += torch.tensor([float((bit**2).sum()), float((stat**2).sum())])
            kinds[site] = kind
            if y.shape[-1] > 1:
                wide.add(site)
        groups = {kind: [s for s in kinds if kinds[s] == kind] for kind in dict.fromkeys(kinds.values())}
        groups["all N > 1"] = sorted(wide)  # every product but the one-column ones (norm statistics, row sums)
        for kind, sites in groups.items():
            errors = torch.stack([per_site[site] for site in sites])
            ratio = (errors[:, 1] / errors[:, 0]).sort().values
            total = errors.sum(0)
            print(f"rtn {rtn:g} ({args.overrange}) {kind:9s} {len(ratio):3d} sites: stat/bit of the summed squared "
                  f"error {total[1] / total[0]:.3f}; per site median {ratio[len(ratio) // 2]:.3f}, "
                  f"range {ratio[0]:.3f}-{ratio[-1]:.3f}; handed over {sum(site in handed for site in sites)}")


if __name__ == "__main__":
    main()
