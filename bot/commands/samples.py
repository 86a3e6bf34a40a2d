"""``whisper-it samples import TSV | export DIR | stats | contributors | quarantine |
remove-user ID``: the training samples and who contributed them.

``import`` reads a manifest with the one TSV reader (``model.asr.tsv``: paths stay inside the
TSV's folder unless ``--allow-outside``) and stores each pair as if a user had corrected
it; a clip that cannot be decoded (damaged, NaN samples, too long) is a per-row error.
``export`` writes a ``datasets`` audiofolder: ``metadata.csv`` (file_name, transcription,
split) and the FLAC files under ``audio/``; a transcription that a spreadsheet would run
as a formula (``= + - @``, tab, CR first) is written with a leading apostrophe.
``stats``, ``contributors`` and ``quarantine`` print JSON; ``remove-user`` deletes one
user's corrections (their samples leave training and evaluation). Only ``import`` creates a
SQLite database that does not exist yet: the others fail on a missing one (a mistyped
WHISPER_IT_DATA_DIR) instead of reporting an empty one.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli import CommandError, open_existing_database, setting_bounded
from bot.corrections import UserIdError, parse_user_id
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.admin_service import AdminService
    from model.asr.audio import AudioLimits
    from model.asr.tsv import LabelledClip
    from storage.audio_store import AudioRef, AudioStore
    from storage.samples import ImportOutcome, Split, SplitPolicy
    from storage.unit_of_work import Database

# Admins bring WAV files, much bigger than Telegram's 20 MB; the duration limit still holds.
IMPORT_MAX_BYTES = 1024 * 1024 * 1024
# Rows stored per transaction: short transactions keep the bot's writes flowing.
IMPORT_BATCH = 50
METADATA_FILE = "metadata.csv"
AUDIO_SUBDIR = "audio"
_EXPORTED_NAME = re.compile(r"[0-9a-f]{64}\.flac")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection);
# a leading apostrophe makes it text (OWASP's advice).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CONTROL_TOKEN = "il testo contiene un codice riservato al modello (<|...|>): riga non importata"
NO_WORDS = "il testo non contiene parole (solo punteggiatura o simboli): riga non importata"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("samples", help="import, export and count training samples")
    actions = parser.add_subparsers(dest="samples_command", required=True)
    importer = actions.add_parser("import", help="add labelled audio from a TSV file")
    importer.add_argument(
        "tsv",
        type=Path,
        help="rows of audio_path<TAB>reference text[<TAB>speaker]; the optional third "
        "column names who speaks (the gate counts speakers as users: name them so that "
        "imported samples can be judged)",
    )
    importer.add_argument(
        "--allow-outside",
        action="store_true",
        help="accept audio paths outside the TSV's folder (../, absolute, symlinks)",
    )
    exporter = actions.add_parser("export", help="write the samples as a datasets audiofolder")
    exporter.add_argument("directory", type=Path)
    exporter.add_argument("--split", choices=("train", "eval"), help="only this split")
    stats = actions.add_parser("stats", help="print sample counts as JSON")
    contributors = actions.add_parser(
        "contributors", help="print each user's share of the samples as JSON"
    )
    actions.add_parser("quarantine", help="print the clips whose senders disagree, as JSON")
    remover = actions.add_parser(
        "remove-user", help="delete one user's corrections (their training contributions)"
    )
    # A string, parsed by us: argparse's int() would accept "١٢" and print English usage.
    remover.add_argument("user_id", help="the user's Telegram id")
    for sub in (exporter, stats, contributors):
        # The settings' own bounds: a value the setting refuses is refused here too.
        sub.add_argument(
            "--eval-fraction",
            type=setting_bounded("eval_fraction"),
            default=None,
            help="share of samples held out for evaluation (default: WHISPER_IT_EVAL_FRACTION)",
        )
        sub.add_argument(
            "--eval-min-sentences",
            type=setting_bounded("eval_min_sentences"),
            default=None,
            help="sentences held out at least (default: WHISPER_IT_EVAL_MIN_SENTENCES)",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.admin_service import AdminService
    from storage.audio_store import AudioStore
    from storage.unit_of_work import Database
    from training.config import split_policy

    # The user's id is checked before the database: a bad id is the first thing to fix.
    user_id = _user_id(args.user_id) if args.samples_command == "remove-user" else None
    url = settings.resolved_database_url
    # ``import`` writes: like the bot it creates and migrates the database (a new
    # installation may start with an import, README "Training samples"). The others only
    # read or make a small edit: no new database, no migration (open_existing_database).
    is_import = args.samples_command == "import"
    database = Database.open(url) if is_import else open_existing_database(url)
    store = AudioStore(settings.audio_dir)
    # The bot's split unless the command line overrides a part of it.
    eval_fraction = getattr(args, "eval_fraction", None)
    min_sentences = getattr(args, "eval_min_sentences", None)
    policy = split_policy(
        settings.eval_fraction if eval_fraction is None else eval_fraction,
        settings.eval_min_sentences if min_sentences is None else min_sentences,
    )
    admin = AdminService(database, policy=policy)
    try:
        if args.samples_command == "import":
            return _import(args.tsv, database, store, settings, allow_outside=args.allow_outside)
        if args.samples_command == "export":
            return _export(args.directory, args.split, policy, database, store)
        if args.samples_command == "contributors":
            return _contributors(admin)
        if args.samples_command == "quarantine":
            return _quarantine(admin)
        if user_id is not None:
            return _remove_user(user_id, admin)
        _print_json(admin.sample_stats().to_dict())
        return 0
    finally:
        database.close()


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# --- import ------------------------------------------------------------------------------


def _import(
    tsv: Path, database: Database, store: AudioStore, settings: Settings, *, allow_outside: bool
) -> int:
    from bot.bootstrap import sandbox_limits
    from model.asr.audio import AudioError, AudioLimits, decode_audio
    from model.asr.normalize import normalize_text
    from model.asr.tsv import ManifestError, read_tsv
    from storage.audio_store import InvalidAudioError
    from storage.labels import has_control_token

    try:
        clips = read_tsv(tsv, allow_outside=allow_outside)
    except ManifestError as exc:
        raise CommandError(str(exc)) from None
    errors: list[dict[str, object]] = []
    limits = AudioLimits(
        max_seconds=settings.max_audio_seconds,
        min_seconds=settings.min_audio_seconds,
        max_bytes=IMPORT_MAX_BYTES,
        sandbox=sandbox_limits(settings),
    )
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    batch: list[tuple[LabelledClip, AudioRef]] = []
    # Each stored clip stays pinned until its row is committed (AudioStore.pinned).
    pins = contextlib.ExitStack()

    def flush() -> None:
        with pins:
            for outcome in _add_batch(database, batch):
                counts[outcome] += 1
        batch.clear()

    with pins:  # released on any error, too
        for clip in clips:
            # Refused as the bot refuses such corrections (bot/corrections.py).
            refusal = CONTROL_TOKEN if has_control_token(clip.text) else None
            if refusal is None and not normalize_text(clip.text):
                refusal = NO_WORDS
            if refusal is not None:
                errors.append({"line": clip.line, "path": clip.relative_path, "error": refusal})
                continue
            # Decode and store outside any transaction: it is the slow part.
            try:
                decoded = decode_audio(clip.audio_path, limits=limits)
                ref = pins.enter_context(store.put_pinned(decoded.samples))
            except (AudioError, InvalidAudioError) as exc:
                # InvalidAudioError: non-finite samples, should a decoder ever let them through.
                error = _audio_refusal(exc, limits)
                errors.append({"line": clip.line, "path": clip.relative_path, "error": error})
                continue
            batch.append((clip, ref))
            if len(batch) >= IMPORT_BATCH:
                flush()
        if batch:
            flush()
    _print_json({**counts, "failed": len(errors), "errors": errors})
    return 1 if errors else 0


def _audio_refusal(exc: Exception, limits: AudioLimits) -> str:
    """The bot's Italian text for a clip that cannot be stored (``model.asr.audio``'s own
    texts are English, for logs): by the error's reason, as the pipeline words it to users;
    ``InvalidAudioError`` (samples that are not numbers) has the generic one."""
    from bot.messages import audio_error
    from model.asr.audio import AudioError

    reason = exc.reason if isinstance(exc, AudioError) else AudioError.reason
    return audio_error(reason, max_seconds=limits.max_seconds, max_mb=limits.max_bytes / 2**20)


def _add_batch(
    database: Database, batch: list[tuple[LabelledClip, AudioRef]]
) -> list[ImportOutcome]:
    """Store a batch of imported clips in one transaction; each one's outcome."""
    from storage.samples import add_labelled_sample

    with database.unit_of_work() as uow:
        outcomes = [
            add_labelled_sample(
                uow.session,
                audio=ref,
                text=clip.text,
                source_ref=clip.relative_path,
                speaker=clip.speaker,
            )
            for clip, ref in batch
        ]
        uow.commit()
    return outcomes


# --- export ------------------------------------------------------------------------------


def _export(
    directory: Path,
    split: Split | None,
    policy: SplitPolicy,
    database: Database,
    store: AudioStore,
) -> int:
    from storage.samples import list_samples

    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, split, policy=policy)
    audio_dir = directory / AUDIO_SUBDIR
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str]] = []
    missing = 0
    for sample in samples:
        source = store.path(sample.audio_sha256)
        target = audio_dir / source.name
        try:
            if not target.exists():
                _copy_atomically(source, target)
        except FileNotFoundError:
            missing += 1  # purged or deleted since the query: leave it out
            continue
        rows.append((f"{AUDIO_SUBDIR}/{source.name}", csv_safe(sample.text), sample.split))
    _write_metadata(directory / METADATA_FILE, rows)
    kept = {Path(name).name for name, _, _ in rows}
    for stale in audio_dir.iterdir():
        # Only files an earlier export wrote: samples deleted since must not linger.
        if _EXPORTED_NAME.fullmatch(stale.name) and stale.name not in kept:
            stale.unlink()
    _print_json(
        {
            "directory": str(directory),
            "exported": len(rows),
            "train": sum(1 for row in rows if row[2] == "train"),
            "eval": sum(1 for row in rows if row[2] == "eval"),
            "missing_audio": missing,
        }
    )
    return 0


def _copy_atomically(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_safe(cell: str) -> str:
    """``cell`` as text a spreadsheet will not evaluate."""
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def _write_metadata(path: Path, rows: list[tuple[str, str, str]]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("file_name", "transcription", "split"))
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- contributors ------------------------------------------------------------------------


def _contributors(admin: AdminService) -> int:
    contributions = admin.contributors().contributions
    _print_json(
        [
            {
                "user_id": c.user_id,
                "name": c.name,
                "username": c.username,
                "samples": c.samples,
                "train": c.train,
                "eval": c.eval,
                "seconds": c.seconds,
                "quarantined": c.quarantined,
                "corrections": c.corrections,
            }
            for c in contributions
        ]
    )
    return 0


def _quarantine(admin: AdminService) -> int:
    conflicts = admin.quarantine()
    _print_json(
        [
            {
                "audio_sha256": c.audio_sha256,
                "owner_id": c.owner_id,
                "user_ids": list(c.user_ids),
                "texts": list(c.texts),
            }
            for c in conflicts
        ]
    )
    return 0


def _user_id(raw_id: str) -> int:
    try:
        return parse_user_id([raw_id])
    except UserIdError as exc:
        raise CommandError(str(exc)) from None


def _remove_user(user_id: int, admin: AdminService) -> int:
    removed = admin.remove_user(user_id)
    _print_json(
        {
            "user_id": removed.user_id,
            "corrections": removed.corrections,
            "samples": removed.samples,
            "quarantined": removed.quarantined,
        }
    )
    return 0
