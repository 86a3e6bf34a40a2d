"""The ``whisper-it`` command line: one parser, one module per command group."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from bot.settings import Settings

# Each module exposes ``register(subparsers)``; its parser sets ``func(args, settings)``.
COMMAND_MODULES = (
    "bot.commands.run_bot",
    "bot.commands.transcribe",
    "bot.commands.model_files",
    "bot.commands.db",
    "bot.commands.samples",
    "bot.commands.training",
)


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-it",
        description="Italian speech-to-text that improves from its users' corrections.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command group not built yet
            if exc.name != name:
                raise
            continue
        module.register(subparsers)
    return parser


class RedactingFormatter(logging.Formatter):
    """Secrets (the bot token is part of every Bot API URL) never reach the log output,
    tracebacks included."""

    def __init__(self, fmt: str, secrets: tuple[str, ...]) -> None:
        super().__init__(fmt)
        self._secrets = tuple(secret for secret in secrets if secret)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text


def secrets_of(settings: Settings) -> tuple[str, ...]:
    values = (settings.telegram_token, settings.webhook_secret, settings.hub_token)
    return tuple(value.get_secret_value() for value in values if value is not None)


def configure_logging(level: str, *, secrets: tuple[str, ...] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging("DEBUG" if args.verbose else settings.log_level, secrets=secrets_of(settings))
    try:
        return int(args.func(args, settings) or 0)
    except CommandError as exc:
        print(f"whisper-it: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
