"""The three metrics: STS-B Spearman, SST-2 probe accuracy, WikiText-2 perplexity.

Each `run_*` takes a `prepare(model)` callback that installs a simulation mode on a freshly loaded
model and returns a calibration hook; the metric is computed on that model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from xbarllm.eval import data
from xbarllm.eval.models import minilm, smollm2

Prepare = Callable[..., None]  # prepare(model, calibrate[, tune_ids]): install the simulation mode
Progress = Callable[[int, int], None] | None  # progress(done, total) of the evaluation pass, in batches or windows


def embed(tok, model, sentences: list[str], batch: int = 64, progress: Progress = None) -> torch.Tensor:
    """Mean-pooled last hidden states (the sentence-transformers recipe), one row per sentence."""
    out = []
    total = -(-len(sentences) // batch)
    with torch.no_grad():
        for i in range(0, len(sentences), batch):
            enc = tok(sentences[i:i + batch], padding=True, truncation=True, max_length=128, return_tensors="pt")
            h = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            out.append((h * mask).sum(1) / mask.sum(1))
            if progress:
                progress(len(out), total)
    return torch.cat(out)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def stsb_score(ea: torch.Tensor, eb: torch.Tensor, gold: list[float]) -> float:
    """STS-B Spearman × 100 between the cosine similarities of paired embeddings and the gold scores."""
    return 100 * spearman(torch.nn.functional.cosine_similarity(ea, eb).tolist(), gold)


def run_stsb(prepare: Prepare, limit: int | None = None, progress: Progress = None) -> float:
    """STS-B test Spearman × 100 of cosine similarity between mean-pooled MiniLM embeddings."""
    a, b, gold = data.stsb("test")
    if limit is not None:
        a, b, gold = a[:limit], b[:limit], gold[:limit]
    tok, model = minilm()
    cal_a, _, _ = data.stsb("dev")
    prepare(model, lambda: embed(tok, model, cal_a[:64]))
    ea = embed(tok, model, a, progress=progress and (lambda d, t: progress(d, 2 * t)))
    eb = embed(tok, model, b, progress=progress and (lambda d, t: progress(t + d, 2 * t)))
    return stsb_score(ea, eb, gold)


def fit_probe(x: torch.Tensor, y: torch.Tensor, steps: int = 200) -> torch.nn.Linear:
    """Logistic regression (L2 1e-4) fitted with L-BFGS on standardised features; deterministic."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.LBFGS(probe.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    target = y.float().unsqueeze(1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(probe(x), target)
        loss = loss + 1e-4 * probe.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return probe


def fp32_probe(train_rows: int = 10_000) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    """(feature mean, feature std, logistic probe) fitted on fp32 MiniLM embeddings of a seed-0 sample of
    `train_rows` SST-2 train sentences: computed once per process and data directory (about a minute here)."""
    return _fp32_probe(data.data_dir(), train_rows)


@functools.lru_cache(maxsize=2)
def _fp32_probe(root: Path, train_rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    text, label = data.sst2("train", root)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(text), generator=g)[:train_rows].tolist()
    tok, ref = minilm()
    x_train = embed(tok, ref, [text[i] for i in idx])
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    return mu, sd, fit_probe((x_train - mu) / sd, torch.tensor([label[i] for i in idx]))


def run_sst2(prepare: Prepare, limit: int | None = None, train_rows: int = 10_000,
             progress: Progress = None) -> tuple[float, float]:
    """SST-2 dev accuracy (%) of a probe trained on fp32 embeddings of a seed-0 train sample.

    Returns (accuracy on this mode's embeddings, accuracy on fp32 embeddings).
    """
    mu, sd, probe = fp32_probe(train_rows)
    dev, y = data.sst2("dev")
    if limit is not None:
        dev, y = dev[:limit], y[:limit]
    truth = torch.tensor(y)

    def accuracy(x: torch.Tensor) -> float:
        with torch.no_grad():
            return 100 * float(((probe((x - mu) / sd).squeeze(1) > 0).long() == truth).float().mean())

    tok, ref = minilm()
    fp32 = accuracy(embed(tok, ref, dev))
    _, model = minilm()
    calibration = data.sst2("train")[0][:64]
    prepare(model, lambda: embed(tok, model, calibration))
    return accuracy(embed(tok, model, dev, progress=progress)), fp32


def run_wikitext2(prepare: Prepare, tokens: int = 8192, window: int = 1024, progress: Progress = None) -> float:
    """Perplexity of SmolLM2 on the first `tokens` tokens of WikiText-2 test, in disjoint windows."""
    tok, model = smollm2()
    ids = tok(data.wikitext2(), return_tensors="pt").input_ids[0][:tokens]
    sst2 = data.sst2("train")[0]  # calibration text from another corpus
    cal_ids = tok(" ".join(sst2[:40]), return_tensors="pt").input_ids[:, :256]
    tune_ids = lambda: tok(" ".join(sst2[40:]), return_tensors="pt").input_ids[0]  # noqa: E731 (tuning text)
    prepare(model, lambda: model(cal_ids), tune_ids)
    return perplexity(model, ids, window, progress)


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, window: int = 1024, progress: Progress = None) -> float:
    """Perplexity of a causal LM on token ids `ids` (1-D), scored in disjoint windows of `window` tokens."""
    nll, count = 0.0, 0
    for s in range(0, len(ids) - 1, window):
        chunk = ids[s:s + window].unsqueeze(0)
        if chunk.shape[1] < 2:
            break
        n = chunk.shape[1] - 1
        nll += float(model(chunk, labels=chunk).loss) * n
        count += n
        if progress:
            progress(s // window + 1, -(-(len(ids) - 1) // window))
    return float(torch.exp(torch.tensor(nll / count)))
