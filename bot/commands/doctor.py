"""``whisper-it doctor``: is this installation ready? One check per thing that can be missing.

Each check reports in plain (Italian) words what it found. A failed *essential* check (the
model, the database, the bot token when one is set, the disk) means the bot cannot work:
exit status 1. The others (the JavaScript runtime and yt-dlp for YouTube, the tagger,
training, the general set the gate judges) only limit what it can do and are reported as
warnings. ``--json`` prints the
same as data.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bot.cli import secrets_of
from bot.settings import Settings

Status = Literal["ok", "warn", "fail"]
STATUS_LABELS: dict[Status, str] = {"ok": "OK", "warn": "AVVISO", "fail": "ERRORE"}
EXIT_OK = 0
EXIT_FAILED = 1

# getMe is one small request: a slow answer is as good as none for a health check.
TOKEN_TIMEOUT_SECONDS = 5.0
GIB = 1024**3
# Below this the bot cannot keep audio and models (one model version is ~0.5-2 GB).
MIN_FREE_BYTES = GIB // 2
# Below this training (checkpoints, a candidate model) will soon fill the disk.
LOW_FREE_BYTES = 5 * GIB
MAX_ERROR_CHARS = 200
# yt-dlp follows YouTube's changes with frequent releases; older than this is a warning.
YTDLP_MAX_AGE_DAYS = 30
SQLITE_MEMORY = (None, "", ":memory:")


@dataclass(frozen=True)
class Finding:
    """What one check found."""

    status: Status
    summary: str  # one line, Italian, for the operator
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Check:
    name: str  # as the operator reads it
    # A failure of an essential check means the bot cannot work (exit status 1).
    essential: bool
    probe: Callable[[Settings], Finding]


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    summary: str
    essential: bool
    details: dict[str, Any]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the model, database, bot token, YouTube runtime, disk, training and "
        "the general set the gate judges",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    results = [run_check(check, settings) for check in CHECKS]
    healthy = not any(r.essential and r.status == "fail" for r in results)
    if args.json:
        data = {"ok": healthy, "checks": [asdict(r) for r in results]}
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        width = max(len(r.name) for r in results)
        for r in results:
            print(f"{STATUS_LABELS[r.status]:<6}  {r.name:<{width}}  {r.summary}")
        failed = sum(r.essential and r.status == "fail" for r in results)
        print(
            "Tutto pronto."
            if healthy
            else f"{failed} controlli essenziali non superati: il bot non può funzionare."
        )
    return EXIT_OK if healthy else EXIT_FAILED


# --------------------------------------------------------------------------- checks


def check_model(settings: Settings) -> Finding:
    from bot.bootstrap import current_model_spec, model_loader, registry_version_name

    spec = current_model_spec(settings)
    version = registry_version_name(settings, spec)
    started = time.perf_counter()
    transcriber = model_loader(settings)(spec)
    seconds = time.perf_counter() - started
    serving = version or spec
    details = {
        "spec": spec,
        "version": version,
        "engine": settings.engine,
        "model_name": getattr(transcriber, "model_name", None),
        "load_seconds": round(seconds, 2),
    }
    origin = "versione addestrata" if version else "modello di base"
    return Finding(
        "ok", f"{serving} ({origin}, motore {settings.engine}) caricato in {seconds:.1f} s", details
    )


def check_database(settings: Settings) -> Finding:
    from sqlalchemy.engine import make_url

    from storage import migrations

    url = settings.resolved_database_url
    parsed = make_url(url)
    shown = parsed.render_as_string(hide_password=True)
    details: dict[str, Any] = {"url": shown}
    sqlite_file = parsed.get_backend_name() == "sqlite" and parsed.database not in SQLITE_MEMORY
    if sqlite_file and not Path(str(parsed.database)).expanduser().is_file():
        # Not an error: the bot creates and migrates it at start. Not created here either.
        summary = f"{shown} non esiste ancora: lo crea il bot all'avvio, o `whisper-it db upgrade`"
        return Finding("warn", summary, details)
    current, head = migrations.current(url), migrations.head()
    details.update(revision=current, head=head)
    if current == head:
        return Finding("ok", f"raggiungibile, schema aggiornato ({head})", details)
    if current is None:
        summary = "raggiungibile ma vuoto: lo prepara il bot all'avvio, o `whisper-it db upgrade`"
        return Finding("warn", summary, details)
    known = {rev.revision for rev in _revisions()}
    if current not in known:
        # Written by a newer whisper-it: this code must not touch it.
        summary = f"schema {current} sconosciuto a questa versione di whisper-it (ultima: {head})"
        return Finding("fail", summary, details)
    summary = f"schema {current} da aggiornare a {head}: lo fa il bot all'avvio"
    return Finding("warn", summary, details)


def _revisions() -> list[Any]:
    from alembic.script import ScriptDirectory

    from storage import migrations

    script = ScriptDirectory.from_config(migrations.alembic_config("sqlite://"))
    return list(script.walk_revisions())


def check_token(settings: Settings) -> Finding:
    import httpx

    if settings.telegram_token is None:
        summary = "non impostato (WHISPER_IT_TELEGRAM_TOKEN): il bot non parte, la CLI funziona"
        return Finding("warn", summary)
    token = settings.telegram_token.get_secret_value()
    # The URL holds the token: it never appears in what this check reports.
    try:
        response = httpx.post(
            f"{settings.telegram_api_url}{token}/getMe", timeout=TOKEN_TIMEOUT_SECONDS
        )
        payload = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        summary = f"Bot API non raggiungibile ({type(exc).__name__})"
        return Finding("fail", summary)
    if response.status_code != httpx.codes.OK or not payload.get("ok"):
        description = str(payload.get("description", response.status_code)).replace(token, "…")
        summary = f"rifiutato dalla Bot API: {description}"
        return Finding("fail", summary)
    me = payload["result"]
    username = me.get("username", "?")
    details = {"username": username, "id": me.get("id")}
    return Finding("ok", f"valido: @{username}", details)


def check_js_runtime(settings: Settings) -> Finding:
    from model.media.js_runtime import find_js_runtime, runtime_version

    runtime = find_js_runtime()
    if runtime is None:
        summary = "nessun runtime JavaScript (deno o node): i link di YouTube non funzioneranno"
        return Finding("warn", summary)
    details: dict[str, Any] = {"runtime": runtime.name, "path": str(runtime.path)}
    try:
        version = runtime_version(runtime)
    except Exception as exc:  # any failure to run it means YouTube will not work
        summary = f"{runtime.name} trovato ma non si avvia ({type(exc).__name__})"
        return Finding("warn", summary, details)
    details["version"] = version
    try:
        import yt_dlp_ejs  # noqa: F401  (yt-dlp's [default] extra: the challenge solvers)
    except ImportError:
        summary = f"{version}, ma manca yt-dlp-ejs: installa yt-dlp[default]"
        return Finding("warn", summary, details)
    summary = f"{version} ({runtime.source})"
    return Finding("ok", summary, details)


def check_tagger(settings: Settings) -> Finding:
    from bot.bootstrap import build_tagger
    from model.tagging.keywords import KeywordTagger

    tagger = build_tagger(settings)
    if tagger is None:
        return Finding("ok", "disattivati (WHISPER_IT_TAGGER=off)")
    name = tagger.name
    details = {"choice": settings.tagger, "tagger": name}
    if settings.tagger == "auto" and isinstance(tagger, KeywordTagger):
        summary = f"{name}: text2tags non disponibile, uso le parole chiave"
        return Finding("warn", summary, details)
    return Finding("ok", name, details)


def check_disk(settings: Settings) -> Finding:
    path = settings.data_dir.expanduser().resolve()
    # DATA_DIR may not exist yet: measure the file system it will be created on.
    existing = next(p for p in (path, *path.parents) if p.exists())
    usage = shutil.disk_usage(existing)
    free_gib = usage.free / GIB
    details = {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}
    summary = f"{free_gib:.1f} GiB liberi in {path}"
    if usage.free < MIN_FREE_BYTES:
        return Finding("fail", summary + ": troppo poco", details)
    if usage.free < LOW_FREE_BYTES:
        summary += ": poco per l'addestramento"
        return Finding("warn", summary, details)
    return Finding("ok", summary, details)


def check_training(settings: Settings) -> Finding:
    try:
        import torch
    except ImportError:
        summary = "torch non installato: il bot trascrive ma non si addestra"
        return Finding("warn", summary)
    cuda = torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(0) if cuda else None
    mode = settings.train_mode if settings.train_mode != "auto" else ("gpu" if cuda else "cpu")
    details = {"torch": torch.__version__, "mode": mode, "cuda": cuda, "gpu": gpu}
    if mode == "gpu" and not cuda:
        summary = "WHISPER_IT_TRAIN_MODE=gpu ma nessuna GPU CUDA: l'addestramento fallirà"
        return Finding("warn", summary, details)
    layers = settings.train_encoder_layers
    where = f"GPU {gpu}" if mode == "gpu" else f"CPU ({layers} strati dell'encoder addestrati)"
    summary = f"torch {torch.__version__}, modalità {mode}: {where}"
    return Finding("ok", summary, details)


def check_general_set(settings: Settings) -> Finding:
    """Which general set the gate judges against forgetting, and that it loads."""
    from training.general_set import general_set_source, load_general_set

    source = general_set_source(settings.eval_general_set)
    if source is None:
        summary = "disattivato (WHISPER_IT_EVAL_GENERAL_SET=none): nessun controllo dell'oblio"
        return Finding("warn", summary, {"source": None})
    general = load_general_set(source)
    details = {
        "source": source,
        "clips": len(general.examples),
        "sentences": general.sentences,
        "speakers": sorted(set(general.speakers.values())),
    }
    return Finding("ok", general.describe(), details)


def check_ytdlp(settings: Settings, *, today: dt.date | None = None) -> Finding:
    """yt-dlp's age (YouTube changes often; an old yt-dlp stops working) and the cookies
    file, if set (its path only: never its content)."""
    from yt_dlp.version import __version__

    today = today or dt.datetime.now(dt.UTC).date()
    released = ytdlp_release_date(__version__)
    details: dict[str, Any] = {
        "version": __version__,
        "cookies_file": settings.ytdlp_cookies_file is not None,
    }
    cookies = settings.ytdlp_cookies_file
    if cookies is not None and not _readable_file(cookies):
        summary = f"WHISPER_IT_YTDLP_COOKIES_FILE non è un file leggibile ({cookies})"
        return Finding("warn", summary, details)
    if released is None:
        return Finding("warn", f"yt-dlp {__version__}: versione non riconosciuta", details)
    age = (today - released).days
    details["age_days"] = age
    if age > YTDLP_MAX_AGE_DAYS:
        summary = (
            f"yt-dlp {__version__} ha {age} giorni: YouTube cambia spesso, aggiornalo "
            "(pip install -U yt-dlp)"
        )
        return Finding("warn", summary, details)
    with_cookies = ", con i cookie di YouTube" if cookies is not None else ""
    return Finding("ok", f"yt-dlp {__version__} ({age} giorni){with_cookies}", details)


def ytdlp_release_date(version: str) -> dt.date | None:
    """yt-dlp versions are release dates: 2026.11.23 (nightlies add a time)."""
    parts = version.split(".")
    try:
        return dt.date(int(parts[0]), int(parts[1]), int(parts[2]))
    except (ValueError, IndexError):
        return None


def _readable_file(path: Path) -> bool:
    try:
        with path.open("rb"):
            return path.is_file()
    except OSError:
        return False


CHECKS: tuple[Check, ...] = (
    Check("modello", True, check_model),
    Check("database", True, check_database),
    Check("token Telegram", True, check_token),
    Check("YouTube (JavaScript)", False, check_js_runtime),
    Check("hashtag", False, check_tagger),
    Check("spazio su disco", True, check_disk),
    Check("addestramento", False, check_training),
    Check("YouTube (yt-dlp)", False, check_ytdlp),
    Check("insieme generale", False, check_general_set),
)


def run_check(check: Check, settings: Settings) -> CheckResult:
    """Run one check; whatever it raises becomes its finding, so every check is reported."""
    try:
        finding = check.probe(settings)
    except Exception as exc:  # the doctor reports problems, it does not have them
        message = " ".join(str(exc).split())[:MAX_ERROR_CHARS]
        for secret in secrets_of(settings):  # an error may quote a URL holding the token
            message = message.replace(secret, "<redacted>")
        status: Status = "fail" if check.essential else "warn"
        summary = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        finding = Finding(status, summary)
    return CheckResult(
        check.name, finding.status, finding.summary, check.essential, finding.details
    )
