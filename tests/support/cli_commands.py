"""``whisper-it db|samples ...`` called in-process through their ``run`` functions, and what
the unit tier's ``cli`` fixture (tests/unit/conftest.py) returns."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from bot.commands import db, samples
from bot.settings import Settings


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-it")
    subparsers = parser.add_subparsers(dest="command", required=True)
    db.register(subparsers)
    samples.register(subparsers)
    return parser


def run_command(settings: Settings, *argv: str) -> int:
    args = parser().parse_args(argv)
    return args.func(args, settings)
