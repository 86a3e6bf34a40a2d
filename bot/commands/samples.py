"""``whisper-it samples import TSV | export DIR | stats``: the training samples.

``import`` reads ``audio_path<TAB>reference`` rows (paths relative to the TSV's folder;
blank lines and ``#`` comments skipped) and stores each pair as if a user had corrected
it. ``export`` writes a ``datasets`` audiofolder: ``metadata.csv`` (file_name,
transcription, split) and the FLAC files under ``audio/``. ``stats`` prints JSON counts.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bot.settings import Settings

if TYPE_CHECKING:
    from storage.audio_store import AudioRef, AudioStore
    from storage.samples import Split
    from storage.unit_of_work import Database

# Admins bring WAV files, much bigger than Telegram's 20 MB; the duration limit still holds.
IMPORT_MAX_BYTES = 1024 * 1024 * 1024
# Rows stored per transaction: short transactions keep the bot's writes flowing.
IMPORT_BATCH = 50
HEADER_FIELDS = frozenset({"audio", "audio_path", "path", "file", "file_name"})
METADATA_FILE = "metadata.csv"
AUDIO_SUBDIR = "audio"
_EXPORTED_NAME = re.compile(r"[0-9a-f]{64}\.flac")


def register(subparsers: argparse._SubParsersAction) -> None:
    from storage.samples import DEFAULT_EVAL_FRACTION

    parser = subparsers.add_parser("samples", help="import, export and count training samples")
    actions = parser.add_subparsers(dest="samples_command", required=True)
    importer = actions.add_parser("import", help="add labelled audio from a TSV file")
    importer.add_argument("tsv", type=Path, help="rows of audio_path<TAB>reference text")
    exporter = actions.add_parser("export", help="write the samples as a datasets audiofolder")
    exporter.add_argument("directory", type=Path)
    exporter.add_argument("--split", choices=("train", "eval"), help="only this split")
    stats = actions.add_parser("stats", help="print sample counts as JSON")
    for sub in (exporter, stats):
        sub.add_argument(
            "--eval-fraction",
            type=float,
            default=DEFAULT_EVAL_FRACTION,
            help="share of samples held out for evaluation (keep it fixed across runs)",
        )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from storage.audio_store import AudioStore
    from storage.unit_of_work import Database

    database = Database.open(settings.resolved_database_url)
    store = AudioStore(settings.audio_dir)
    try:
        if args.samples_command == "import":
            return _import(args.tsv, database, store, settings)
        if args.samples_command == "export":
            return _export(args.directory, args.split, args.eval_fraction, database, store)
        return _stats(args.eval_fraction, database)
    finally:
        database.close()


def _print_json(data: object) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2))


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TsvRow:
    line: int
    audio_path: Path
    relative_path: str
    text: str


def read_tsv(path: Path) -> tuple[list[TsvRow], list[dict[str, object]]]:
    """The rows of ``path`` and the errors of its malformed lines."""
    rows: list[TsvRow] = []
    errors: list[dict[str, object]] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.split("\t")
        if number == 1 and fields[0].strip().lower() in HEADER_FIELDS:
            continue
        if len(fields) < 2 or not fields[0].strip() or not "\t".join(fields[1:]).strip():
            errors.append({"line": number, "error": "expected audio_path<TAB>reference"})
            continue
        relative = fields[0].strip()
        rows.append(
            TsvRow(
                line=number,
                audio_path=path.parent / relative,
                relative_path=relative,
                # A tab inside the reference is kept as a space rather than lost.
                text=" ".join("\t".join(fields[1:]).split()),
            )
        )
    return rows, errors


def _import(tsv: Path, database: Database, store: AudioStore, settings: Settings) -> int:
    from model.audio import AudioError, AudioLimits, decode_audio
    from storage.samples import add_labelled_sample

    if not tsv.is_file():
        print(f"error: {tsv} is not a file", file=sys.stderr)
        return 2
    rows, errors = read_tsv(tsv)
    limits = AudioLimits(
        max_seconds=settings.max_audio_seconds,
        min_seconds=settings.min_audio_seconds,
        max_bytes=IMPORT_MAX_BYTES,
    )
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    batch: list[tuple[TsvRow, AudioRef]] = []

    def flush() -> None:
        with database.unit_of_work() as uow:
            outcomes = [
                add_labelled_sample(
                    uow.session, audio=ref, text=row.text, source_ref=row.relative_path
                )
                for row, ref in batch
            ]
            uow.commit()
        for outcome in outcomes:
            counts[outcome] += 1
        batch.clear()

    for row in rows:
        # Decode and store outside any transaction: it is the slow part.
        try:
            decoded = decode_audio(row.audio_path, limits=limits)
        except AudioError as exc:
            errors.append({"line": row.line, "path": row.relative_path, "error": str(exc)})
            continue
        batch.append((row, store.put(decoded.samples)))
        if len(batch) >= IMPORT_BATCH:
            flush()
    if batch:
        flush()
    _print_json({**counts, "failed": len(errors), "errors": errors})
    return 1 if errors else 0


# --- export ------------------------------------------------------------------------------


def _export(
    directory: Path,
    split: Split | None,
    eval_fraction: float,
    database: Database,
    store: AudioStore,
) -> int:
    from storage.samples import list_samples

    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, split, eval_fraction=eval_fraction)
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
        rows.append((f"{AUDIO_SUBDIR}/{source.name}", sample.text, sample.split))
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


# --- stats -------------------------------------------------------------------------------


def _stats(eval_fraction: float, database: Database) -> int:
    from storage.samples import sample_stats

    with database.unit_of_work(read_only=True) as uow:
        stats = sample_stats(uow.session, eval_fraction=eval_fraction)
    _print_json(stats.to_dict())
    return 0
