"""The README's settings tables show each setting's real default (they had drifted)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from bot.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?:WHISPER_IT_)?([A-Z0-9_]+)` \| ([^|]*) \|", re.MULTILINE)
MIB = 1 << 20
# Defaults a table describes in words (empty, generated, a dash) rather than shows.
DESCRIBED = {"", "-", "generated"}


def _shown(cell: str) -> Any:
    value = cell.strip().strip("`")
    if value.endswith(" MiB"):
        return float(value.removesuffix(" MiB")) * MIB
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return float(value)
    except ValueError:
        return value


def _actual(default: Any) -> Any:
    if isinstance(default, bool):
        return default
    if isinstance(default, int | float):
        return float(default)
    return str(default)


def test_every_row_names_a_setting_and_its_default() -> None:
    rows = ROW.findall(README.read_text(encoding="utf-8"))
    assert len(rows) > 50
    fields = Settings.model_fields
    wrong = []
    for name, cell in rows:
        field = fields.get(name.lower())
        if field is None:
            wrong.append(f"{name}: no such setting")
        elif cell.strip().strip("`") not in DESCRIBED and _shown(cell) != _actual(field.default):
            wrong.append(f"{name}: README {cell.strip()!r}, default {field.default!r}")
    assert not wrong, "\n".join(wrong)


def test_every_setting_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if name.upper() not in text]
    assert not missing, f"settings the README never names: {missing}"
