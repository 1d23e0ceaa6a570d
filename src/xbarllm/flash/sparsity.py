"""Which FFN neurons a token needs: ground truth, the gate threshold (a) and the low-rank predictor (b).

SwiGLU is not ReLU-sparse, so "needed" is defined by magnitude: neuron i is needed for a token when its
contribution to the down projection, |SiLU(g_i)·u_i|, exceeds a per-layer threshold calibrated to a target
density. (a) thresholds |SiLU(g_i)| instead (needs the gate rows in DRAM); (b) is the paper's low-rank
predictor on the FFN input (the layer's attention output after the pre-FFN norm), trained per layer to
predict the ground truth with a balanced loss.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

log = logging.getLogger(__name__)


def ffn_parts(mlp: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(|SiLU(gate·x)|, |SiLU(gate·x)·(up·x)|) for every neuron of one Llama MLP, shape (..., d_ff)."""
    a = mlp.act_fn(mlp.gate_proj(x))
    return a.abs(), (a * mlp.up_proj(x)).abs()


@torch.no_grad()
def ffn_inputs(model: nn.Module, ids: torch.Tensor, window: int = 1024) -> list[torch.Tensor]:
    """The input of every layer's MLP for each token of `ids` (dense fp32 model), as [layers] × (tokens, d)."""
    layers = model.model.layers
    seen: list[list[torch.Tensor]] = [[] for _ in layers]
    hooks = [layer.mlp.register_forward_pre_hook(lambda m, a, i=i: seen[i].append(a[0].reshape(-1, a[0].shape[-1])))
             for i, layer in enumerate(layers)]
    try:
        for s in range(0, len(ids), window):
            model(ids[s:s + window].unsqueeze(0))
    finally:
        for h in hooks:
            h.remove()
    return [torch.cat(v) for v in seen]


def quantile_tau(scores: torch.Tensor, density: float) -> float:
    """Threshold above which a fraction `density` of `scores` lies."""
    flat = scores.reshape(-1).float()
    k = max(1, round(density * flat.numel()))
    return float(flat.topk(k).values[-1])


class LowRankPredictor(nn.Module):
    """logits = B·(A·x) + c: the paper's two-factor predictor of active FFN neurons."""

    def __init__(self, d_model: int, d_ff: int, rank: int):
        super().__init__()
        self.a = nn.Linear(d_model, rank, bias=False)
        self.b = nn.Linear(rank, d_ff)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x))


def train_predictor(x: torch.Tensor, labels: torch.Tensor, rank: int, epochs: int = 4,
                    batch: int = 512, lr: float = 3e-3, seed: int = 0) -> LowRankPredictor:
    """Fit a LowRankPredictor to boolean `labels` (tokens, d_ff) from inputs `x` with a class-balanced BCE."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pred = LowRankPredictor(x.shape[1], labels.shape[1], rank)
    density = float(labels.float().mean().clamp(1e-4, 1 - 1e-4))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - density) / density))
    opt = torch.optim.Adam(pred.parameters(), lr=lr)
    y = labels.float()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(batch):
            opt.zero_grad()
            loss_fn(pred(x[idx]), y[idx]).backward()
            opt.step()
    return pred.eval().requires_grad_(False)


def recall_precision(pred: torch.Tensor, truth: torch.Tensor) -> tuple[float, float]:
    """Recall and precision of boolean `pred` against boolean `truth`."""
    hit = float((pred & truth).sum())
    return hit / max(float(truth.sum()), 1.0), hit / max(float(pred.sum()), 1.0)


def window_union(mask: torch.Tensor, k: int) -> torch.Tensor:
    """OR of each token's mask with those of the k−1 tokens before it (mask: (..., tokens, d_ff))."""
    out = mask.clone()
    for s in range(1, k):
        out[..., s:, :] |= mask[..., :-s, :]
    return out


Selector = Callable[[int, nn.Module, torch.Tensor], torch.Tensor]


@contextmanager
def masked_ffn(model: nn.Module, select: Selector, window: int = 1) -> Iterator[None]:
    """Run every MLP only on the neurons `select(layer, mlp, x)` marks (bool, (..., d_ff)),
    OR-ed over the last `window` tokens."""
    layers = model.model.layers
    saved = [layer.mlp.forward for layer in layers]

    def make(i: int, mlp: nn.Module):
        def forward(x: torch.Tensor) -> torch.Tensor:
            mask = window_union(select(i, mlp, x), window) if window > 1 else select(i, mlp, x)
            h = mlp.act_fn(mlp.gate_proj(x)) * mlp.up_proj(x)
            return mlp.down_proj(h * mask)
        return forward

    for i, layer in enumerate(layers):
        layer.mlp.forward = make(i, layer.mlp)
    try:
        yield
    finally:
        for layer, f in zip(layers, saved, strict=True):
            layer.mlp.forward = f
