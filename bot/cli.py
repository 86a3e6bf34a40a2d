"""The ``whisper-it`` command line: one parser, one module per command group."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import math
import operator
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pydantic import ValidationError

from bot.ops.log_format import JsonFormatter, RedactingFormatter
from bot.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError

    from storage.unit_of_work import Database

# Each module exposes ``register(subparsers)``; its parser sets ``func(args, settings)``.
COMMAND_MODULES = (
    "bot.commands.run_bot",
    "bot.commands.worker",
    "bot.commands.transcribe",
    "bot.commands.model_files",
    "bot.commands.db",
    "bot.commands.samples",
    "bot.commands.training",
    "bot.commands.doctor",
)

# Commands that run as services log their progress at the configured level (INFO by
# default). One-shot commands print what the user asked for on stdout; library chatter
# (Alembic's INFO lines, transformers, yt-dlp) stays below WARNING unless --verbose.
SERVICE_COMMANDS = frozenset({"bot", "worker"})
ONE_SHOT_LOG_LEVEL = "WARNING"
VERBOSE_LOG_LEVEL = "DEBUG"
# An error line quotes at most this much of a path or a value: a 10,000-character argument
# must not become a 10,000-character message.
MAX_QUOTED_CHARS = 80
EXIT_FAILURE = 1
VERBOSE_HINT = "(dettagli con --verbose)"
# A driver's reason for a refused connection is quoted up to this length.
MAX_REASON_CHARS = 200
MISSING_DATABASE = (
    "il database {path} non esiste: controlla WHISPER_IT_DATA_DIR o WHISPER_IT_DATABASE_URL "
    "(un database nuovo lo crea `whisper-it db upgrade`, o il bot all'avvio)"
)
EXIT_INTERRUPTED = 130
# SQLite's result codes for a file that is not a database (random bytes, another format) or
# one whose pages are damaged: the file, not the code, is wrong.
SQLITE_DAMAGED = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})
NOT_A_DATABASE = "database {url}: il file è danneggiato o non è un database SQLite"
# PostgreSQL's SQLSTATE for CREATE of a table or index that exists (42P07 duplicate_table).
DUPLICATE_TABLE_SQLSTATE = "42P07"
FOREIGN_DATABASE = (
    "database {url}: contiene già tabelle che whisper-it deve creare ({reason}): è il "
    "database di un'altra applicazione, o uno schema che non corrisponde alla revisione "
    "registrata"
)
SCHEMA_NOT_AT_HEAD = (
    "lo schema del database non è alla revisione {head} di questa versione di whisper-it "
    "(è a {current}): esegui `whisper-it db upgrade`"
)
NO_REVISION = "base, nessuna revisione applicata"
FOREIGN_TABLES = (
    "database {url}: contiene già tabelle ({tables}) e nessuna revisione di whisper-it: è il "
    "database di un'altra applicazione; indica un database vuoto o solo di whisper-it"
)

# Italian wording for the operating-system errors bad input produces, by errno.
OS_ERROR_TEXTS: dict[int, str] = {
    errno.ENOENT: "file o cartella inesistente",
    errno.ENAMETOOLONG: "nome di file troppo lungo",
    errno.EISDIR: "è una cartella, non un file",
    errno.ENOTDIR: "un elemento del percorso non è una cartella",
    errno.EACCES: "permesso negato",
    errno.EPERM: "operazione non permessa",
    errno.ELOOP: "troppi collegamenti simbolici",
    errno.ENOSPC: "spazio su disco esaurito",
    errno.EROFS: "file system in sola lettura",
    errno.EEXIST: "esiste già",
}


# A number flag outside what it accepts is a wrong command line (exit 2 with the usage):
# these say why, in Italian, with the bounds the flag (or the setting it overrides) declares.
BOUND_TEXTS = {
    "ge": "almeno {}",
    "gt": "maggiore di {}",
    "le": "al massimo {}",
    "lt": "minore di {}",
}
BOUND_CHECKS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}
NOT_A_NUMBER = {int: "{value} non è un numero intero", float: "{value} non è un numero"}
NOT_FINITE = "{value} non è un numero finito"
OUT_OF_RANGE = "{value} non è ammesso: deve essere {bounds}"

Number = int | float


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1, no traceback."""


def bounded(kind: type[int] | type[float], **bounds: Number) -> Callable[[str], Number]:
    """An argparse ``type``: a ``kind`` number within ``bounds`` (``ge``, ``gt``, ``le``,
    ``lt``); anything else makes argparse exit 2 with the usage and an Italian reason."""

    def parse(text: str) -> Number:
        shown = _quote(text)
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(NOT_A_NUMBER[kind].format(value=shown)) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(NOT_FINITE.format(value=shown))
        if not all(BOUND_CHECKS[name](value, limit) for name, limit in bounds.items()):
            limits = " e ".join(BOUND_TEXTS[name].format(limit) for name, limit in bounds.items())
            raise argparse.ArgumentTypeError(OUT_OF_RANGE.format(value=shown, bounds=limits))
        return value

    parse.__name__ = kind.__name__
    return parse


def setting_bounded(name: str) -> Callable[[str], Number]:
    """``bounded`` with the type and the bounds of the setting ``name`` (``Settings``): a
    flag that overrides a setting for one call accepts exactly what the setting accepts."""
    field = Settings.model_fields[name]
    bounds = {
        key: getattr(constraint, key)
        for constraint in field.metadata
        for key in BOUND_TEXTS
        if getattr(constraint, key, None) is not None
    }
    return bounded(field.annotation, **bounds)  # type: ignore[arg-type]


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


def secrets_of(settings: Settings) -> tuple[str, ...]:
    values = (settings.telegram_token, settings.webhook_secret, settings.hub_token)
    return tuple(value.get_secret_value() for value in values if value is not None)


def configure_logging(
    level: str, *, secrets: tuple[str, ...] = (), json_lines: bool = False
) -> None:
    """Log to stderr: plain lines, or one JSON object per line (WHISPER_IT_LOG_FORMAT)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(secrets)
        if json_lines
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", secrets)
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # Python's warnings become log records too: nothing else writes to stderr.
    logging.captureWarnings(True)
    # httpx logs every request URL at INFO, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def log_level_for(args: argparse.Namespace, settings: Settings) -> str:
    if args.verbose:
        return VERBOSE_LOG_LEVEL
    if args.command in SERVICE_COMMANDS:
        return settings.log_level
    return ONE_SHOT_LOG_LEVEL


def _ffmpeg_error_type() -> type[BaseException] | None:
    # Only when PyAV is already loaded: a command that never decoded raised no FFmpeg error,
    # and importing PyAV here would slow every command's failure path.
    module = sys.modules.get("av.error")
    return getattr(module, "FFmpegError", None)


def is_input_error(exc: BaseException) -> bool:
    """Errors that bad input raises (as opposed to bugs): shown as one line."""
    ffmpeg_error = _ffmpeg_error_type()
    return isinstance(exc, OSError | ValueError) or (
        ffmpeg_error is not None and isinstance(exc, ffmpeg_error)
    )


def _quote(value: object) -> str:
    text = str(value)
    if len(text) > MAX_QUOTED_CHARS:
        text = text[: MAX_QUOTED_CHARS - 1] + "…"
    return repr(text)


def describe_input_error(exc: BaseException) -> str:
    """One Italian line for an error that bad input (a path, a file's bytes, a setting)
    raises from deep inside a command: the user learns what is wrong with what they gave."""
    if isinstance(exc, ValidationError):
        return f"configurazione non valida: {_invalid_settings(exc) or exc.title}"
    if isinstance(exc, UnicodeError):
        return "il file non è testo UTF-8 valido"
    ffmpeg_error = _ffmpeg_error_type()
    if ffmpeg_error is not None and isinstance(exc, ffmpeg_error):
        # PyAV's errors carry the file name; FFmpeg's own words are English.
        return f"file audio/video illeggibile o danneggiato ({_quote(exc)})"
    if isinstance(exc, OSError):
        reason = OS_ERROR_TEXTS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
        if exc.filename is not None:
            return f"{_quote(exc.filename)}: {reason}"
        return f"errore del sistema: {reason}"
    if "null byte" in str(exc):
        return "il percorso o il testo contiene un carattere nullo"
    return f"valore non valido: {_quote(exc)}"


def require_database(url: str) -> None:
    """Fail, creating nothing, when ``url`` names a SQLite file that does not exist: a
    command that only reads must not make an empty database at a mistyped path and report
    zero. Commands that write (``db upgrade``, ``samples import``, the services) create it."""
    from storage.engine import sqlite_file

    path = sqlite_file(url)
    if path is not None and path.is_dir():
        raise CommandError(f"database {_quote(path)}: {OS_ERROR_TEXTS[errno.EISDIR]}")
    if path is not None and not path.is_file():
        raise CommandError(MISSING_DATABASE.format(path=_quote(path)))


def open_existing_database(url: str) -> Database:
    """The database of a command that reads or makes a small edit (reports, ``rollback``,
    ``samples remove-user``): it must exist (``require_database``) and be at the newest
    revision. It is never created nor migrated: after a ``db downgrade`` the operator asked
    for, a report must not silently upgrade the schema again."""
    from storage.unit_of_work import Database, SchemaNotAtHead

    require_database(url)
    try:
        return Database.open(url, migrate=False, require_head=True)
    except SchemaNotAtHead as exc:
        current = exc.current or NO_REVISION
        raise CommandError(SCHEMA_NOT_AT_HEAD.format(current=current, head=exc.head)) from None


def _first_line(exc: BaseException, secret: str | None) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if secret:
        text = text.replace(secret, "***")
    return text[:MAX_REASON_CHARS]


def _url_problem(url: str) -> str | None:
    """What is wrong with the database URL itself (its syntax, its dialect, its driver)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return "WHISPER_IT_DATABASE_URL non è un URL di database valido"
    shown = parsed.render_as_string(hide_password=True)
    try:
        parsed.get_dialect().import_dbapi()
    except ArgumentError:  # NoSuchModuleError: no such dialect or driver
        return f"database {_quote(shown)}: tipo di database o driver sconosciuto"
    except ImportError as exc:
        return f"database {_quote(shown)}: driver non installato ({exc.name or exc})"
    return None


def _invalid_settings(exc: ValidationError) -> str:
    """Each bad setting by the variable an operator sets, with pydantic's reason (never the
    value: it may be a secret)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    return "; ".join(
        f"{prefix}{str(error['loc'][0]).upper()}: {error['msg']}" if error["loc"] else error["msg"]
        for error in exc.errors()
    )


def describe_database_error(exc: BaseException, url: str) -> str | None:
    """One Italian line for a database that cannot be opened or migrated (a mistyped URL, a
    driver not installed, a server that refuses the connection, a file that is damaged or no
    database, another application's database, a revision that does not exist), without the
    password; None when ``exc`` is not that (a bug)."""
    # Only when loaded: a command that never touched a database raised none of these.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    alembic_exc = sys.modules.get("alembic.util.exc")
    if alembic_exc is not None and isinstance(exc, alembic_exc.CommandError):
        return f"migrazione dello schema impossibile: {_first_line(exc, None)}"
    migrations = sys.modules.get("storage.migrations")
    if migrations is not None and isinstance(exc, migrations.ForeignDatabaseError):
        return FOREIGN_TABLES.format(url=_shown_url(url), tables=", ".join(exc.tables))
    if sa_exc is None:
        return None
    if isinstance(exc, sa_exc.DBAPIError):
        return _describe_driver_error(exc, url)
    if isinstance(exc, sa_exc.ArgumentError | ImportError):
        return _url_problem(url)
    return None


def _shown_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return _quote(make_url(url).render_as_string(hide_password=True))


def _describe_driver_error(exc: DBAPIError, url: str) -> str | None:
    """A driver's error (``sqlalchemy.exc.DBAPIError``) that the database, not the code,
    causes: a connection refused, a file that is no database, another application's tables."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    parsed = make_url(url)
    shown = _quote(parsed.render_as_string(hide_password=True))
    orig = exc.orig or exc
    if getattr(orig, "sqlite_errorname", None) in SQLITE_DAMAGED:
        # Raised by the first statement on the file (a PRAGMA while connecting) or later.
        return NOT_A_DATABASE.format(url=shown)
    statement = (exc.statement or "").lstrip().upper()
    duplicate = "already exists" in str(orig) or (
        getattr(orig, "sqlstate", None) == DUPLICATE_TABLE_SQLSTATE
    )
    if statement.startswith("CREATE") and duplicate:
        # A migration creating a table the database already has: the first migration
        # on a database another application made (its own ``users``, say).
        return FOREIGN_DATABASE.format(url=shown, reason=_first_line(orig, parsed.password))
    if isinstance(exc, OperationalError) and exc.statement is None:
        # Raised while connecting (no statement yet): the server, the file, the credentials.
        reason = _first_line(orig, parsed.password)
        return f"database {shown} non raggiungibile: {reason}"
    return None


def _describe_failure(exc: BaseException, settings: Settings) -> str | None:
    """The one line an operator's error gets; None for a bug (its traceback stays)."""
    if is_input_error(exc):
        return describe_input_error(exc)
    return describe_database_error(exc, settings.resolved_database_url)


def _fail(message: str, *, json_lines: bool = False) -> int:
    # Exactly one line, whatever the message holds (a JSON object with LOG_FORMAT=json).
    text = f"whisper-it: {' '.join(message.split())}"
    if json_lines:
        logging.getLogger("whisper-it").error(text)
    else:
        print(text, file=sys.stderr)
    return EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # What argparse cannot say alone (two arguments that exclude each other, say): a
    # command's ``check`` calls its parser's ``error``, exit 2 with the usage.
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    try:
        settings = Settings()
    except ValidationError as exc:
        return _fail(describe_input_error(exc))
    json_lines = settings.log_format == "json"
    configure_logging(
        log_level_for(args, settings), secrets=secrets_of(settings), json_lines=json_lines
    )
    try:
        return int(args.func(args, settings) or 0)
    except CommandError as exc:
        return _fail(str(exc), json_lines=json_lines)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    # Bad input reaching the standard library or a decoder (a path too long, a NUL byte, a
    # folder given as a file, an unreadable file, a TSV that is not UTF-8, samples that are
    # not numbers, bytes FFmpeg cannot demux, a database that cannot be opened or migrated).
    # --verbose shows the traceback, and anything else propagates: real bugs stay visible.
    except Exception as exc:
        message = _describe_failure(exc, settings)
        if json_lines and message is None:
            # A bug: its traceback as one JSON line, not Python's plain one.
            logging.getLogger(__name__).critical("unexpected error", exc_info=exc)
            return EXIT_FAILURE
        if args.verbose or message is None:
            raise
        logging.getLogger(__name__).debug("input error", exc_info=exc)
        return _fail(f"{message} {VERBOSE_HINT}", json_lines=json_lines)
