"""Integer matrix products through the simulated computation crossbar, batched (paper §5.2–5.5).

X (activations) is split into balanced digits that switch resistors; Y (weights or activations)
enters through the DACs. K is cut into tiles of rows // S elements. Per tile and digit, each
output has a '+' and a '-' column (a negative weight or digit swaps them); both are non-negative
sums converted by the shared ADC. Shift-and-add recombines tiles and digits: Σ_p B^p Σ_tile (q⁺ - q⁻).
With no noise and an ADC whose LSB is one unit product, the result equals the integer matmul.
With `copies` r, each element's rows repeat r times in its column: the kernel sees weights r·Y (the
copies' summed current), RTN rtn/√r on them (r independent draws: variance r·rtn²·Σχ²y²), tiles of
rows // (S·r) elements and ADC ranges in those units; the result is divided by r.
"""

from __future__ import annotations

import numpy as np
import torch

from xbarllm.mapping.encoding import base, elements_per_crossbar
from xbarllm.sim.config import SimConfig
from xbarllm.sim.encoding import cell_energy, encode, n_digits
from xbarllm.sim.kernel import crossbar
from xbarllm.sim.quant import largest_magnitude

_CHUNK_ELEMENTS = 1 << 24  # quantile calibration: bound on column sums held at once (about 64 MB of float32)


def largest_column_sum(k_tile: int, w_max: int, s: int) -> int:
    """The largest possible column sum in unit products: every row at digit 2^S - 1 and weight w_max."""
    return k_tile * w_max * (2**s - 1)


def adc_lsb(cfg: SimConfig, k_tile: int, w_max: int, digits: int,
            fullscale: list | None = None) -> torch.Tensor | None:
    """ADC step in unit products, full scale / (2^b - 1) rounded up to a whole unit: per digit position (D,),
    or per tile and digit (T, D) when `fullscale` is a calibrated (T, D) list.

    Without `fullscale`, the full scale is the largest possible column sum × adc_fullscale.
    A wide enough ADC has a step of exactly 1.
    """
    if cfg.adc_bits is None:
        return None
    if fullscale is None:
        fullscale = [largest_column_sum(k_tile, w_max, cfg.encoding_s) * cfg.adc_fullscale] * digits
    codes = 2**cfg.adc_bits - 1
    return (torch.tensor(fullscale, dtype=torch.float64) / codes).ceil().clamp(min=1).float()


def tiles_and_steps(x: torch.Tensor, w: torch.Tensor, cfg: SimConfig, x_max: int | None = None,
                    fullscale: list | None = None) -> tuple[int, int, torch.Tensor, int, float]:
    """(elements per tile kt, digit count D, ADC step per tile and digit (T, D) float32 in unit products of
    the copies' summed weights (all 0 without an ADC), their largest |weight| r·max|w|, max|x|) for
    (G, M, K) @ (G, K, N).

    `x_max` bounds |x| (default 2^(act_bits-1)-1) and sets D; `fullscale` is as in `adc_lsb`; tiles beyond
    those calibrated (a longer K) take the coarsest calibrated step."""
    kt = elements_per_crossbar(cfg.rows, cfg.encoding_s, cfg.copies)  # >= 1: SimConfig checks it
    T = -(-x.shape[-1] // kt)
    x_max = x_max if x_max is not None else 2 ** (cfg.act_bits - 1) - 1
    D = n_digits(cfg.encoding_s, x_max)
    b = base(cfg.encoding_s)
    if (x_top := largest_magnitude(x)) > (b**D - 1) // 2:
        raise ValueError(f"{D} base-{b} digits cannot hold values up to {int(x_top)}")
    w_max = cfg.copies * int(largest_magnitude(w))
    lsb = adc_lsb(cfg, kt, max(w_max, 1), D, fullscale)
    if lsb is None:  # no ADC: the kernel skips quantisation when lsb <= 0
        lsb = torch.zeros(T, D)
    elif lsb.dim() == 1:
        lsb = lsb.expand(T, D)
    else:
        lsb = torch.cat([lsb, lsb.amax(0, keepdim=True).expand(max(0, T - len(lsb)), D)])[:T]
    return kt, D, lsb.float().contiguous(), w_max, x_top


def _column_quantiles(x: torch.Tensor, w: torch.Tensor, s: int, kt: int, D: int, q: float) -> list:
    """Per (tile, digit), the q-quantile of the noise-free column sums, as a (T, D) list (the kernel records
    their maxima itself)."""
    G, M, K = x.shape
    T, N = -(-K // kt), w.shape[-1]
    pad = T * kt - K
    wt = torch.nn.functional.pad(w.float(), (0, 0, 0, pad)).reshape(G, T, kt, N)
    dig = encode(x, s, D).float()  # (D, G, M, K)
    dig = torch.nn.functional.pad(dig, (0, pad)).reshape(D, G, M, T, kt).permute(1, 3, 0, 2, 4).reshape(G, T, D * M, kt)
    # z+ - z- = d·w and z+ + z- = |d|·|w|, so two products give both columns.
    signed, absolute = dig @ wt, dig.abs() @ wt.abs()
    z = torch.cat([((absolute + sign * signed) / 2).view(G, T, D, M, N) for sign in (1, -1)], dim=3)
    z = z.permute(1, 2, 0, 3, 4).reshape(T, D, -1)  # (T, D, everything else)
    step = max(1, z.shape[-1] // 200_000)  # a strided sample keeps torch.quantile within its size limit
    return torch.quantile(z[..., ::step], q, dim=-1).tolist()


def xbar_matmul(x: torch.Tensor, w: torch.Tensor, cfg: SimConfig, gen: torch.Generator | None = None,
                x_max: int | None = None, fullscale: list[float] | None = None,
                observed: list[list[float]] | None = None, stats: dict[str, int] | None = None) -> torch.Tensor:
    """(G, M, K) @ (G, K, N) for integer-valued float tensors, through the crossbar; returns float64.

    `gen` seeds the RTN draws and, without noise, the coins that round column sums lying exactly on an ADC
    threshold (without `gen`, those coins take key 0).

    `x_max` bounds |x| (default 2^(act_bits-1)-1) and sets the digit count. `fullscale` sets the
    ADC range per digit position, or per tile and digit, in unit products (see `adc_lsb`). If `observed`
    is a list, the largest column sum per tile and digit before the ADC is appended to it as a (T, D) list.
    `stats` (a dict) accumulates "conversions" and "over_range": sums above the ADC's range, clipped or (under
    `adc_overrange: reconvert`) converted again.
    """
    G, M, _ = x.shape
    N = w.shape[-1]
    s, r = cfg.encoding_s, cfg.copies
    kt, D, lsb, w_max, _ = tiles_and_steps(x, w, cfg, x_max, fullscale)
    T = lsb.shape[0]
    full = lsb * (2**cfg.adc_bits - 1) if cfg.adc_bits is not None else lsb
    peaks = None
    if observed is not None and cfg.adc_clip_quantile >= 1:  # the kernel records the largest column sums
        peaks = np.zeros((T, D), dtype=np.float32)
    elif observed is not None:  # quantiles: from every column sum, in torch
        rows = max(1, _CHUNK_ELEMENTS // max(1, 2 * G * T * D * N))  # bound the memory of the column sums
        chunks = [_column_quantiles(x[:, m0:m0 + rows], w * r, s, kt, D, cfg.adc_clip_quantile)
                  for m0 in range(0, M, rows)]
        observed.append(torch.tensor(chunks).amax(0).tolist() if chunks else [[0.0] * D] * T)
    coarse = None
    if cfg.adc_bits is not None and cfg.adc_overrange == "reconvert":
        worst = [largest_column_sum(kt, max(w_max, 1), s)] * D
        step = adc_lsb(cfg, kt, max(w_max, 1), D, worst).expand(T, D).contiguous()
        coarse = (step.numpy(), (step * (2**cfg.adc_bits - 1)).numpy())
    # the noise's key, and without noise the key of the coins that break exact ADC ties (`column._convert`)
    tied = gen is not None and cfg.adc_bits is not None
    key = int(torch.randint(0, 2**62, (), generator=gen)) if cfg.rtn or tied else 0
    out, over = crossbar(x.float().contiguous().numpy(), w.float().contiguous().numpy(), cell_energy(s), s, D, kt,
                         cfg.rtn_element, key, lsb.numpy(), full.numpy(), coarse, r, peaks)
    if peaks is not None:
        observed.append(peaks.tolist())
    if stats is not None:
        stats["conversions"] = stats.get("conversions", 0) + 2 * G * M * T * D * N
        stats["over_range"] = stats.get("over_range", 0) + over
    return torch.from_numpy(out / r if r > 1 else out)
