"""Readers for the staged evaluation data (formats in shared/data/README.md). Nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

from xbarllm.errors import XbarError


def data_dir() -> Path:
    """$XBARLLM_DATA, else the first ../shared/data beside the project checkout or the working directory."""
    env = os.environ.get("XBARLLM_DATA")
    if env:
        return Path(env)
    candidates = [Path(__file__).resolve().parents[4] / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise XbarError(f"{path}: data file not found "
                        "(set XBARLLM_DATA to the folder holding stsb/, sst2/, wikitext2/)")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise XbarError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def stsb(split: str = "test", root: Path | None = None) -> tuple[list[str], list[str], list[float]]:
    """STS-B pairs and gold scores: tab-separated, unquoted; some rows carry 2 extra licence fields."""
    path = (root or data_dir()) / "stsb" / f"sts-{split}.csv"
    a, b, gold = [], [], []
    for n, line in enumerate(_lines(path), 1):
        f = line.split("\t")
        if len(f) < 7:
            raise XbarError(f"{path}: line {n} has {len(f)} tab-separated fields, expected 7 or 9")
        try:
            gold.append(float(f[4]))
        except ValueError:
            raise XbarError(f"{path}: line {n}: score '{f[4]}' is not a number") from None
        a.append(f[5])
        b.append(f[6])
    return a, b, gold


def sst2(split: str = "dev", root: Path | None = None) -> tuple[list[str], list[int]]:
    """SST-2 sentences and 0/1 labels (GLUE tsv with a `sentence<TAB>label` header)."""
    path = (root or data_dir()) / "sst2" / f"{split}.tsv"
    lines = _lines(path)
    if not lines or lines[0].split("\t") != ["sentence", "label"]:
        raise XbarError(f"{path}: expected the header 'sentence<TAB>label'")
    text, label = [], []
    for n, line in enumerate(lines[1:], 2):
        s, _, y = line.rpartition("\t")
        if y not in ("0", "1"):
            raise XbarError(f"{path}: line {n}: label '{y}' is not 0 or 1")
        text.append(s)
        label.append(int(y))
    return text, label


def wikitext2(root: Path | None = None) -> str:
    """WikiText-2 test text joined the usual Hugging Face way (blank lines become paragraph breaks)."""
    lines = _lines((root or data_dir()) / "wikitext2" / "wiki.test.raw")
    return "\n\n".join(line if line.strip() else "" for line in lines)
