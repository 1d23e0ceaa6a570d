"""Hooks that send a transformers model's products through the simulated crossbar.

Linear layers (all WS products) and LayerNorm/RMSNorm are replaced module by module; attention's
Q·Kᵀ and scores·V (the NW products) run in an attention function registered with transformers'
AttentionInterface under the name "xbar". Nothing of the model's own code is copied.
"""

from __future__ import annotations

import torch
from torch import nn

from xbarllm.sim.config import SimConfig
from xbarllm.sim.crossbar import xbar_matmul
from xbarllm.sim.faults import misread_probability, stored_weights
from xbarllm.sim.quant import quantize
from xbarllm.sim.stat import stat_matmul

CROSSBAR_MODES = ("xbar", "xbar_stat")  # products quantised and sent through the computation crossbar
Operand = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # a float operand, or its (integers, scales)


def _rescaled(y: torch.Tensor, *scales: torch.Tensor) -> torch.Tensor:
    """y times each scale in turn; in place while autograd is off (y is a product's fresh output), which saves
    a pass over memory per factor."""
    for s in scales:
        y = y.mul_(s) if not torch.is_grad_enabled() else y * s
    return y


def _biased(y: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y + bias (in place while autograd is off, as `_rescaled`)."""
    if bias is None:
        return y
    return y.add_(bias) if not torch.is_grad_enabled() else y + bias


def rtn_error(x: torch.Tensor, y: torch.Tensor, rtn: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian error of x @ y when every product term's conductance fluctuates by the relative amplitude
    `rtn`: variance rtn² Σ x²y² per output (differentiable, for noise-aware training)."""
    var = (x * x) @ (y * y)
    return rtn * (var + 1e-30).sqrt() * torch.randn(var.shape, generator=gen)


class Products:
    """One chip instance: config, seeded generator, per-site ADC full scales, softmax overflow counters.

    A product site (a Linear, a norm statistic, an attention product) has its own ADC reference.
    Under a calibrated policy, `calibrate()` runs the model once with an ideal ADC and records the
    largest column sum per site and digit position (or per site, crossbar tile and digit); that
    becomes the ADC full scale there.
    """

    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.fullscale: dict[str, list] = {}
        self._observed: dict[str, list[list[list[float]]]] | None = None
        self._act_max: dict[XbarLinear, torch.Tensor] | None = None  # smoothing pass: per-channel max |x|
        self.exp_overflows = 0
        self.exp_calls = 0
        self.adc: dict[str, int] = {}  # ADC conversions and over-range sums, summed over products

    def matmul(self, xq: torch.Tensor, yq: torch.Tensor, site: str) -> torch.Tensor:
        """Integer-valued (G, M, K) @ (G, K, N): exact in int8 mode, through the crossbar in the xbar modes."""
        if self.cfg.mode not in CROSSBAR_MODES:
            return (xq.double() @ yq.double()).to(torch.float32)
        if self._observed is not None:  # calibration pass: ideal ADC, no noise, record column sums
            ideal = self.cfg.model_copy(update={"adc_bits": None, "rtn": 0.0})
            return xbar_matmul(xq, yq, ideal, observed=self._observed.setdefault(site, [])).to(torch.float32)
        fs = self.fullscale.get(site) if self.cfg.adc_policy != "worst_case" else None
        if self.cfg.mode == "xbar_stat" and yq.shape[-1] > 1:  # one-column products stay bit level (sim.stat)
            return stat_matmul(xq, yq, self.cfg, self.gen, fullscale=fs, stats=self.adc)
        return xbar_matmul(xq, yq, self.cfg, self.gen, fullscale=fs, stats=self.adc).to(torch.float32)

    def analog(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Float x @ y plus the RTN model's error (see `rtn_error`) without quantisation, digits or ADC."""
        return x @ y + rtn_error(x, y, self.cfg.rtn_element, self.gen) if self.cfg.rtn else x @ y

    @property
    def quantises(self) -> bool:
        """Whether products take quantised operands (every mode but fp32 and analog)."""
        return self.cfg.mode not in ("fp32", "analog")

    def rows(self, x: torch.Tensor) -> Operand:
        """x (G, M, K) as `product`'s X: quantised per row, once for several products, if this mode quantises."""
        return quantize(x, self.cfg.act_bits, dim=-1) if self.quantises else x

    def ones(self, groups: int, k: int) -> Operand:
        """A ones column per group (G, K, 1), as `product`'s Y (quantised if this mode quantises)."""
        if not self.quantises:
            return torch.ones(groups, k, 1)
        q, s = quantize(torch.ones(1, k, 1), self.cfg.weight_bits, dim=-2)
        return q.expand(groups, k, 1), s.expand(groups, 1, 1)

    def product(self, x: Operand, y: Operand, site: str) -> torch.Tensor:
        """Float (G, M, K) @ (G, K, N) with per-row X and per-column Y scales (both operands quantised, unless
        given as (integers, scales) already)."""
        if self.cfg.mode == "fp32":
            return x @ y
        if self.cfg.mode == "analog":
            return self.analog(x, y)
        xq, sx = x if isinstance(x, tuple) else quantize(x, self.cfg.act_bits, dim=-1)
        yq, sy = y if isinstance(y, tuple) else quantize(y, self.cfg.weight_bits, dim=-2)
        return _rescaled(self.matmul(xq, yq, site), sx, sy)

    def calibrate(self, run) -> None:
        """Set each site's ADC full scale to the largest column sum seen while `run()` executes: per digit
        position (policy `calibrated`), or, for WS products (fixed weights, so each crossbar tile keeps its
        range), per crossbar tile and digit (`calibrated_tile`; NW products stay per site).

        With smooth_alpha set, a first pass in fp32 records each Linear's per-channel activation range
        and smooths it (int8 and xbar modes) before the ADC ranges are recorded."""
        if self.cfg.mode in ("int8", *CROSSBAR_MODES) and self.cfg.smooth_alpha is not None:
            cfg, self._act_max = self.cfg, {}
            self.cfg = cfg.model_copy(update={"mode": "fp32"})
            try:
                with torch.no_grad():
                    run()
                for lin, amax in self._act_max.items():
                    lin.smooth(amax, cfg.smooth_alpha)
            finally:
                self.cfg, self._act_max = cfg, None
        if self.cfg.mode not in CROSSBAR_MODES or self.cfg.adc_policy == "worst_case":
            return
        self._observed = {}
        try:
            with torch.no_grad():
                run()
            for site, seen in self._observed.items():
                if not seen:
                    continue
                peak = torch.tensor(seen).amax(0)  # (T, D)
                per_tile = self.cfg.adc_policy == "calibrated_tile" and site.startswith("linear")
                self.fullscale[site] = (peak if per_tile else peak.amax(0)).tolist()
        finally:
            self._observed = None


class XbarLinear(nn.Module):
    """nn.Linear whose product X·Wᵀ runs as a WS sub-operation: weights from the dense crossbar."""

    def __init__(self, lin: nn.Linear, chip: Products):
        super().__init__()
        self.chip, self.bias, self.weight_fp32 = chip, lin.bias, lin.weight
        self.in_features, self.out_features = lin.in_features, lin.out_features
        self.site = f"linear{id(self)}"
        self.in_scale: torch.Tensor | None = None  # smoothing: x / in_scale, weight rows × in_scale
        self._store(lin.weight.detach().t().contiguous())

    def _store(self, w: torch.Tensor) -> None:
        """Quantise the K × N weights to DAC levels and store them in the dense crossbar (with its faults)."""
        cfg = self.chip.cfg
        wq, self.w_scale = quantize(w, cfg.weight_bits, dim=0)
        misread = max(cfg.misread_prob, misread_probability(cfg.dense_noise, cfg.bits_per_cell))
        self.wq = stored_weights(wq, cfg.weight_bits, cfg.bits_per_cell, misread, cfg.stuck_rate, self.chip.gen)

    def smooth(self, act_max: torch.Tensor, alpha: float) -> None:
        """Move activation range into the weights: s_j = max|x_j|^α / max|w_j|^(1-α) per input channel j.
        The divide by s runs in the digital F unit before the encoder (one multiply per activation)."""
        w = self.weight_fp32.detach().t()
        s = (act_max.clamp(min=1e-5) ** alpha / w.abs().amax(dim=1).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
        self.in_scale = s
        self._store((w * s[:, None]).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.chip.cfg.mode == "fp32":
            if self.chip._act_max is not None:
                seen = x.detach().abs().reshape(-1, x.shape[-1]).amax(0).float()
                prev = self.chip._act_max.get(self)
                self.chip._act_max[self] = seen if prev is None else torch.maximum(prev, seen)
            return nn.functional.linear(x, self.weight_fp32, self.bias)
        if self.chip.cfg.mode == "analog":
            y = self.chip.analog(x, self.weight_fp32.t())
            return y + self.bias if self.bias is not None else y
        lead = x.shape[:-1]
        if self.in_scale is not None:
            x = x / self.in_scale
        xq, sx = quantize(x.reshape(1, -1, x.shape[-1]), self.chip.cfg.act_bits, dim=-1)
        y = _rescaled(self.chip.matmul(xq, self.wq.unsqueeze(0), self.site), sx, self.w_scale)
        return _biased(y.reshape(*lead, self.out_features), self.bias)


class XbarNorm(nn.Module):
    """LayerNorm (or RMSNorm) whose statistics come from the crossbar (Table 4).

    E(u) = u·1 / m and E(u²) = u·uᵀ / m run as NW products, one session per token; the
    square root and divide run in the dedicated unit, in floating point.
    """

    def __init__(self, norm: nn.Module, chip: Products, rms: bool):
        super().__init__()
        self.chip, self.rms = chip, rms
        self.weight = norm.weight
        self.bias = getattr(norm, "bias", None)
        self.eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", 1e-6)
        self.site = f"norm{id(self)}"

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        lead, m = u.shape[:-1], u.shape[-1]
        rows = u.reshape(-1, 1, m).float()  # one session per token: G = tokens, M = 1
        x, y = self.chip.rows(rows), rows.transpose(1, 2)  # the row quantised once, for both statistics
        cfg = self.chip.cfg
        if isinstance(x, tuple) and cfg.weight_bits == cfg.act_bits:  # Y = Xᵀ, quantised alike
            y = (x[0].transpose(1, 2), x[1].transpose(1, 2))
        sq = self.chip.product(x, y, f"{self.site}.meansq") / m  # row·rowᵀ
        if self.rms:
            mean = torch.zeros_like(sq)
        else:
            mean = self.chip.product(x, self.chip.ones(rows.shape[0], m), f"{self.site}.mean") / m  # row·1
        var = (sq - mean.square()).clamp(min=0)
        out = (rows - mean) / torch.sqrt(var + self.eps)
        out = out.reshape(*lead, m) * self.weight
        return out + self.bias if self.bias is not None else out


def xbar_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                   **kwargs) -> tuple[torch.Tensor, None]:
    """Attention as Table 2's NW sub-operations: EXP(Q·Kᵀ), a row sum by a ones vector, ·V then divide."""
    chip: Products = module.xbar_chip
    B, H, L, hd = query.shape
    g = H // key.shape[1]
    key = key.repeat_interleave(g, dim=1) if g > 1 else key
    value = value.repeat_interleave(g, dim=1) if g > 1 else value
    scaling = hd**-0.5 if scaling is None else scaling
    q, k, v = (t.reshape(B * H, t.shape[2], hd).float() for t in (query, key, value))
    site = f"attn{id(module)}"
    s = chip.product(q, k.transpose(1, 2), f"{site}.qk") * scaling
    if attention_mask is not None:
        s = s + attention_mask.float().expand(B, H, L, s.shape[-1]).reshape(B * H, L, -1)
    if chip.cfg.softmax_subtract_max:
        s = s - s.amax(-1, keepdim=True)
    e = torch.exp(s)  # F = EXP, fused into Q·Kᵀ
    chip.exp_calls += 1
    chip.exp_overflows += int(not torch.isfinite(e.amax()))  # inf or NaN anywhere (one reduction, no mask)
    e = chip.rows(e)  # quantised once, for both products
    rowsum = chip.product(e, chip.ones(B * H, s.shape[-1]), f"{site}.rowsum")  # EXP(S)·1
    out = chip.product(e, v, f"{site}.sv") / rowsum  # F = divide by the row sum
    return out.reshape(B, H, L, hd).transpose(1, 2).contiguous().to(query.dtype), None


def output_projection(model: nn.Module) -> nn.Module | None:
    """The model's output projection (an LM's vocabulary head, stage "head"), or None if it has none."""
    get = getattr(model, "get_output_embeddings", None)
    return get() if callable(get) else None


def install(model: nn.Module, cfg: SimConfig) -> Products:
    """Route every product of `model` through the simulated chip; returns the chip (for its counters)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    chip = Products(cfg)
    AttentionInterface.register("xbar", xbar_attention)
    AttentionMaskInterface.register("xbar", eager_mask)  # additive float mask, as eager attention
    head = output_projection(model)
    for _, mod in list(model.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, nn.Linear) and cfg.runs("head" if child is head else "linear"):
                setattr(mod, child_name, XbarLinear(child, chip))
            elif (isinstance(child, nn.LayerNorm) or type(child).__name__.endswith("RMSNorm")) and cfg.runs("norm"):
                setattr(mod, child_name, XbarNorm(child, chip, rms=not isinstance(child, nn.LayerNorm)))
        if hasattr(mod, "is_causal") or type(mod).__name__.endswith("Attention"):
            mod.xbar_chip = chip
    if cfg.runs("attention"):
        model.set_attn_implementation("xbar")
    return chip

