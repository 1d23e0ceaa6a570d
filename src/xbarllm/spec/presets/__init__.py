"""Preset files shipped with the package: listing and reading, shared by every spec type."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from xbarllm.errors import XbarError, from_validation

M = TypeVar("M", bound=BaseModel)


def names(kind: str, ext: str) -> list[str]:
    """Preset names of one kind (models, hardware, platforms): file stems under presets/<kind>/."""
    root = resources.files("xbarllm") / "spec" / "presets" / kind
    return sorted(p.name[: -len(ext)] for p in root.iterdir() if p.name.endswith(ext))


def preset_text(kind: str, name: str, ext: str) -> str:
    """Text of the preset file presets/<kind>/<name><ext>."""
    return (resources.files("xbarllm") / "spec" / "presets" / kind / f"{name}{ext}").read_text()


def load_yaml(kind: str, name_or_path: str | Path, label: str) -> tuple[str, dict]:
    """(where, mapping) from a YAML preset name or file; bad names, files and YAML are one-line errors."""
    text = str(name_or_path)
    if text in names(kind, ".yaml"):
        where, raw = text, preset_text(kind, text, ".yaml")
    else:
        path = Path(text)
        if not path.is_file():
            raise XbarError(f"unknown {label} '{text}': not a file, and not a preset "
                            f"(presets: {', '.join(names(kind, '.yaml'))})")
        where = str(path)
        try:
            raw = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise XbarError(f"{where}: cannot read ({e})") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise XbarError(f"{where}: not valid YAML{f' at line {mark.line + 1}' if mark else ''}") from None
    if not isinstance(data, dict):
        raise XbarError(f"{where}: expected a mapping of fields at the top level")
    return where, data


def load_validated(kind: str, name_or_path: str | Path, label: str, cls: type[M]) -> M:
    """A `cls` from a YAML preset name or file (`load_yaml`); validation errors name the file and field."""
    where, data = load_yaml(kind, name_or_path, label)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise from_validation(where, e) from None
