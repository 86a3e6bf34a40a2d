"""Policy fields that operators set: declared once, on the policy dataclass.

A field of ``FinetuneArguments`` or ``GatePolicy`` made with ``configurable(...)`` names the
setting that configures it (``WHISPER_IT_<NAME>``). ``bot.settings`` builds its fields from
these declarations (type, default, description), and ``from_settings`` builds the policy
back from a settings object: nothing is copied by hand, so a default cannot drift.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

SETTING = "setting"
HELP = "help"
GE = "ge"

T = TypeVar("T")


def configurable(default: Any, *, setting: str, help: str, ge: float | None = None) -> Any:
    """A policy field configured by the setting ``setting`` (lower case, no prefix);
    ``ge``: the smallest value the setting accepts."""
    return dataclasses.field(default=default, metadata={SETTING: setting, HELP: help, GE: ge})


@dataclasses.dataclass(frozen=True)
class SettingField:
    setting: str
    field: str
    annotation: Any
    default: Any
    help: str
    ge: float | None = None


def setting_fields(policy: type) -> list[SettingField]:
    """The configurable fields of a policy dataclass, with their resolved types."""
    hints = typing.get_type_hints(policy)
    return [
        SettingField(
            setting=f.metadata[SETTING],
            field=f.name,
            annotation=hints[f.name],
            default=f.default,
            help=f.metadata.get(HELP, ""),
            ge=f.metadata.get(GE),
        )
        for f in dataclasses.fields(policy)
        if SETTING in f.metadata
    ]


def from_settings(policy: type[T], settings: object, **overrides: Any) -> T:
    """``policy`` with every configurable field read from ``settings``, then ``overrides``."""
    values = {f.field: getattr(settings, f.setting) for f in setting_fields(policy)}
    return policy(**(values | overrides))
