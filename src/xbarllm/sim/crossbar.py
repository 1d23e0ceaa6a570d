"""Integer matrix products through the simulated computation crossbar, batched (paper §5.2–5.5).

X (activations) is split into balanced digits that switch resistors; Y (weights or activations)
enters through the DACs. K is cut into tiles of rows // S elements. Per tile and digit, each
output has a '+' and a '-' column (a negative weight or digit swaps them); both are non-negative
sums converted by the shared ADC. Shift-and-add recombines tiles and digits: Σ_p B^p Σ_tile (q⁺ - q⁻).
With no noise and an ADC whose LSB is one unit product, the result equals the integer matmul.
"""

from __future__ import annotations

import numpy as np
import torch

from xbarllm.mapping.encoding import base
from xbarllm.sim.config import SimConfig
from xbarllm.sim.encoding import cell_energy, encode, n_digits
from xbarllm.sim.kernel import recombine

_CHUNK_ELEMENTS = 1 << 24  # bound on tile-output elements per chunk (about 64 MB of float32)


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
        fullscale = [k_tile * w_max * (2**cfg.encoding_s - 1) * cfg.adc_fullscale] * digits
    codes = 2**cfg.adc_bits - 1
    return (torch.tensor(fullscale, dtype=torch.float64) / codes).ceil().clamp(min=1).float()


def _column_peak(z_plus: torch.Tensor, z_minus: torch.Tensor, q: float) -> torch.Tensor:
    """Per (tile, digit), the largest column sum (q = 1), or its q-quantile, over a (G, T, D, M, N) chunk."""
    z = torch.cat([z_plus, z_minus], dim=3).transpose(0, 2).transpose(0, 1)  # (T, D, G, 2M, N)
    if q >= 1.0:
        return z.amax(dim=(2, 3, 4))
    flat = z.reshape(z.shape[0], z.shape[1], -1)
    step = max(1, flat.shape[-1] // 200_000)  # a strided sample keeps torch.quantile within its size limit
    return torch.quantile(flat[..., ::step].float(), q, dim=-1)


def xbar_matmul(x: torch.Tensor, w: torch.Tensor, cfg: SimConfig, gen: torch.Generator | None = None,
                x_max: int | None = None, fullscale: list[float] | None = None,
                observed: list[list[float]] | None = None) -> torch.Tensor:
    """(G, M, K) @ (G, K, N) for integer-valued float tensors, through the crossbar; returns float64.

    `x_max` bounds |x| (default 2^(act_bits-1)-1) and sets the digit count. `fullscale` sets the
    ADC range per digit position, or per tile and digit, in unit products (see `adc_lsb`). If `observed`
    is a list, the largest column sum per tile and digit before the ADC is appended to it as a (T, D) list.
    """
    G, M, K = x.shape
    N = w.shape[-1]
    s = cfg.encoding_s
    kt = max(1, cfg.rows // s)
    T = -(-K // kt)
    x_max = x_max if x_max is not None else 2 ** (cfg.act_bits - 1) - 1
    D = n_digits(s, x_max)
    b = base(s)
    w_max = int(w.abs().max().item()) if w.numel() else 0
    lsb = adc_lsb(cfg, kt, max(w_max, 1), D, fullscale)
    if lsb is None:  # no ADC: the kernel skips quantisation when lsb <= 0
        lsb = torch.zeros(T, D)
    elif lsb.dim() == 1:
        lsb = lsb.expand(T, D)
    else:  # tiles beyond those calibrated (a longer K) take the coarsest calibrated step
        lsb = torch.cat([lsb, lsb.amax(0, keepdim=True).expand(max(0, T - len(lsb)), D)])[:T]
    lsb = lsb.float().contiguous()
    full = lsb * (2**cfg.adc_bits - 1) if cfg.adc_bits is not None else lsb

    pad = T * kt - K
    wt = torch.nn.functional.pad(w.float(), (0, 0, 0, pad)).reshape(G, T, kt, N)
    w_abs = wt.abs()
    if cfg.rtn:
        w2, w2_signed = wt.square(), wt.square() * wt.sign()
    scale = np.array([float(b**p) for p in range(D)])

    out = torch.empty(G, M, N, dtype=torch.float64)
    rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, G * T * D * N))
    for m0 in range(0, M, rows_per_chunk):
        xc = x[:, m0:m0 + rows_per_chunk]
        mc = xc.shape[1]
        dig = encode(xc, s, D).float()  # (D, G, mc, K)
        dig = torch.nn.functional.pad(dig, (0, pad)).reshape(D, G, mc, T, kt).permute(1, 3, 0, 2, 4)
        dig = dig.reshape(G, T, D * mc, kt)
        # The '+' column sums products of matching sign, the '-' column the others:
        # z+ - z- = d·w and z+ + z- = |d|·|w|, so two K-long products give both columns exactly.
        signed, absolute = dig @ wt, dig.abs() @ w_abs
        if observed is not None:
            z_plus = (absolute + signed).mul_(0.5)
            observed.append(_column_peak(z_plus.view(G, T, D, mc, N), (z_plus - signed).view(G, T, D, mc, N),
                                         cfg.adc_clip_quantile).tolist())
            del z_plus
        v_signed = v_abs = signed  # placeholders, unread without noise
        key = 0
        if cfg.rtn:  # per-resistor noise: each column's variance is rtn² Σ χ² w² over its conducting cells
            e = cell_energy(dig.abs(), s)
            v_signed, v_abs = (e * dig.sign()) @ w2_signed, e @ w2
            key = int(torch.randint(0, 2**62, (), generator=gen))
        chunk = out[:, m0:m0 + mc] if mc == M else torch.empty(G, mc, N, dtype=torch.float64)
        recombine(signed.numpy(), absolute.numpy(), v_signed.numpy(), v_abs.numpy(), cfg.rtn, key,
                  lsb.numpy(), full.numpy(), scale, D, chunk.numpy())
        if mc != M:
            out[:, m0:m0 + mc] = chunk
    return out
