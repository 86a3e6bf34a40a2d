"""``whisper-it transcribe`` (a file or a link) and ``whisper-it evaluate`` (WER on a TSV):
thin adapters over the transcription pipeline (``bot.pipeline``) and the one evaluation
(``model.asr.evaluation``).

stdout carries only the result (text, or JSON with ``--json``); progress and errors go to
stderr, so ``whisper-it transcribe URL --json > out.json`` stays machine-readable.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bot.cli import OS_ERROR_TEXTS, CommandError
from bot.messages import MODEL_UNAVAILABLE, audio_error
from bot.pipeline import (
    InputRejected,
    LocalFile,
    MediaLink,
    MediaSource,
    Stage,
    TranscriptionPipeline,
)
from bot.settings import Settings
from model.asr.routing import DEFAULT_CHUNK_BATCH, LONG_AUDIO_SECONDS
from model.asr.subtitles import segments_to_srt
from model.asr.transcription import ENGINES, TranscribeOptions
from model.asr.tsv import ManifestError, read_tsv

if TYPE_CHECKING:
    from training.general_set import GeneralSet

YTDLP_LOGGER = "model.media.youtube"

STAGES = {Stage.DOWNLOAD: "Download", Stage.TRANSCRIBE: "Trascrizione"}
FILE_NOT_FOUND = "file non trovato: {path}"
NOT_A_FILE = "non è un file: {path}"
CANNOT_WRITE = "impossibile scrivere {path}: {error}"
NOTHING_TO_SCORE = (
    "nessuna clip con un testo da valutare: dopo la normalizzazione nessun testo di "
    "riferimento contiene parole (solo punteggiatura o simboli)"
)
NOT_WRITABLE = "scrittura non permessa (permessi, o file system in sola lettura)"
ONE_SET = "indica un file TSV oppure --general-set (uno dei due)"
TAGGER_UNAVAILABLE = "il modello per gli hashtag non è disponibile: {detail} (usa --no-tags)"

_URL_START_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*://|//|www\.)", re.IGNORECASE)
_HOST_END_RE = re.compile(r"[/?#]")


def register(subparsers: argparse._SubParsersAction) -> None:
    transcribe = subparsers.add_parser(
        "transcribe", help="transcribe an audio/video file or a YouTube link"
    )
    transcribe.add_argument("source", help="audio or video file, or a YouTube link")
    _model_arguments(transcribe)
    transcribe.add_argument("--json", action="store_true", help="print JSON with segments")
    transcribe.add_argument("--srt", type=Path, metavar="FILE", help="also write SubRip subtitles")
    transcribe.add_argument("--no-tags", action="store_true", help="skip hashtags")
    transcribe.add_argument(
        "--no-progress", action="store_true", help="no progress updates on stderr"
    )
    transcribe.set_defaults(func=run_transcribe)

    evaluate = subparsers.add_parser("evaluate", help="WER/CER of a model on a labelled TSV")
    evaluate.add_argument("tsv", type=Path, nargs="?", help="rows: audio_path<TAB>reference text")
    evaluate.add_argument(
        "--general-set",
        action="store_true",
        help="instead of a TSV: the general set the gate judges (EVAL_GENERAL_SET)",
    )
    _model_arguments(evaluate)
    evaluate.add_argument(
        "--allow-outside",
        action="store_true",
        help="accept audio paths outside the TSV's folder",
    )
    evaluate.set_defaults(func=run_evaluate, check=functools.partial(_one_set, evaluate))


def _one_set(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """A TSV or ``--general-set``, never both nor neither: a wrong command line (exit 2)."""
    if args.general_set == (args.tsv is not None):
        parser.error(ONE_SET)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model spec (default: the current model)")
    parser.add_argument("--engine", choices=ENGINES, help="inference engine")
    parser.add_argument("--beam-size", type=int, help="beam size (1 = greedy)")
    parser.add_argument(
        "--chunk-batch",
        "--batch-size",
        dest="chunk_batch",
        type=int,
        help=(
            "voice-activity chunks of long audio decoded together, ct2 engine (0 = sequential; "
            f"default: {DEFAULT_CHUNK_BATCH} for audio over {LONG_AUDIO_SECONDS:.0f} s)"
        ),
    )


# --------------------------------------------------------------------------- progress


class ProgressBar:
    """Stage progress on stderr: one ``\\r``-redrawn line per stage on a terminal, else a
    line at each quarter, so logs and pipes get a handful of lines, not thousands."""

    BAR_WIDTH = 24
    MIN_REDRAW_SECONDS = 0.1
    LINE_STEP = 0.25  # not a terminal: a line at 0, 25, 50, 75 and 100 %

    def __init__(self, stream: TextIO, *, enabled: bool = True) -> None:
        self._stream = stream
        self._enabled = enabled
        self._tty = enabled and stream.isatty()
        self._stage: str | None = None
        self._last_draw = 0.0
        self._next_step = 0.0
        self._open_line = False
        self._last_text = ""

    def update(self, stage: str, fraction: float | None, *, detail: str = "") -> None:
        if not self._enabled:
            return
        new_stage = stage != self._stage
        if new_stage:
            self._end_line()
            self._stage = stage
            self._next_step = 0.0
        text = self._render(stage, fraction, detail)
        if text == self._last_text:
            return
        if self._tty:
            now = time.monotonic()
            final = fraction is not None and fraction >= 1.0
            if new_stage or final or now - self._last_draw >= self.MIN_REDRAW_SECONDS:
                self._last_draw = now
                self._write("\r\x1b[K" + text, text)
                self._open_line = True
        elif new_stage or (fraction is not None and fraction >= self._next_step):
            if fraction is not None:
                self._next_step = (int(fraction / self.LINE_STEP) + 1) * self.LINE_STEP
            self._write(text + "\n", text)

    def _write(self, raw: str, text: str) -> None:
        self._stream.write(raw)
        self._stream.flush()
        self._last_text = text

    def close(self) -> None:
        self._end_line()

    def _end_line(self) -> None:
        if self._open_line:
            self._stream.write("\n")
            self._stream.flush()
            self._open_line = False

    def _render(self, stage: str, fraction: float | None, detail: str) -> str:
        if fraction is None:
            return f"{stage}: {detail}".rstrip(": ")
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.BAR_WIDTH)
        bar = "#" * filled + "." * (self.BAR_WIDTH - filled)
        text = f"{stage}: {fraction * 100:3.0f}% [{bar}]"
        return f"{text} {detail}" if detail else text


# --------------------------------------------------------------------------- helpers


def looks_like_url(text: str, *, hosts: frozenset[str]) -> bool:
    """A scheme, ``//``, ``www.``, or a known host before the first ``/`` (``youtu.be/ID``)."""
    text = text.strip()
    if _URL_START_RE.match(text):
        return True
    host = _HOST_END_RE.split(text, maxsplit=1)[0].lower()
    return host in hosts or host.rsplit(":", 1)[0] in hosts


def _quiet_logs(args: argparse.Namespace) -> None:
    # INFO is the bot's default level; on a command line it buries the result and the one
    # error line. -v (or WHISPER_IT_LOG_LEVEL=DEBUG) brings the log back.
    root = logging.getLogger()
    if not args.verbose and root.level == logging.INFO:
        root.setLevel(logging.WARNING)
        # yt-dlp's warnings ("falling back on generic extractor") are not the user's concern;
        # its errors come back as LinkError and are printed as one Italian line.
        logging.getLogger(YTDLP_LOGGER).setLevel(logging.ERROR)


def _pipeline(
    args: argparse.Namespace, settings: Settings, *, with_tags: bool
) -> TranscriptionPipeline:
    from bot.bootstrap import build_pipeline  # the services' imports: ~1.4 s, on use only
    from model.tagging.tags import TaggerUnavailable

    try:
        pipeline = build_pipeline(
            settings, spec=args.model, engine=args.engine, with_tags=with_tags
        )
    except TaggerUnavailable as exc:
        raise CommandError(TAGGER_UNAVAILABLE.format(detail=exc)) from exc
    if args.beam_size:
        pipeline.options = replace(pipeline.options, beam_size=args.beam_size)
    return pipeline


@contextlib.contextmanager
def _model_errors() -> Iterator[None]:
    from model.asr.convert import ConversionError
    from model.asr.sources import ModelUnavailable

    try:
        yield
    except (ModelUnavailable, ConversionError) as exc:
        raise CommandError(MODEL_UNAVAILABLE.format(detail=exc)) from exc


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(CANNOT_WRITE.format(path=path, error=_reason(exc))) from exc


def _reason(exc: OSError) -> str:
    return OS_ERROR_TEXTS.get(exc.errno or 0, exc.strerror or str(exc))


def _check_writable(path: Path) -> None:
    """Fail before any work when ``path`` cannot be written: a missing folder, a folder
    given as the file, no permission, a read-only file system. Finding out after the
    transcription would throw it away. Nothing is created here (``os.access``)."""
    if not path.parent.is_dir():
        raise CommandError(FILE_NOT_FOUND.format(path=path.parent))
    if path.is_dir():
        raise CommandError(CANNOT_WRITE.format(path=path, error=OS_ERROR_TEXTS[errno.EISDIR]))
    # An existing file is overwritten (its own permission); a new one needs the folder's.
    target, mode = (path, os.W_OK) if path.exists() else (path.parent, os.W_OK | os.X_OK)
    if not os.access(target, mode):
        raise CommandError(CANNOT_WRITE.format(path=path, error=NOT_WRITABLE))


def _source(text: str, settings: Settings) -> MediaSource:
    if looks_like_url(text, hosts=settings.url_hosts):
        return MediaLink(text)
    path = Path(text).expanduser()
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte
        exists = is_file = False
    if not exists:
        raise CommandError(FILE_NOT_FOUND.format(path=text[:200]))
    if not is_file:
        raise CommandError(NOT_A_FILE.format(path=text[:200]))
    return LocalFile(path)


# --------------------------------------------------------------------------- commands


def run_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    _quiet_logs(args)
    if args.srt is not None:
        _check_writable(args.srt)
    source = _source(args.source, settings)
    pipeline = _pipeline(args, settings, with_tags=not args.no_tags)
    bar = ProgressBar(sys.stderr, enabled=not args.no_progress)

    def on_progress(stage: Stage, fraction: float | None) -> None:
        bar.update(STAGES[stage], fraction)

    try:
        with _model_errors():
            result = pipeline.run(
                source,
                progress=on_progress,
                chunk_batch=args.chunk_batch,
                timestamps=args.srt is not None,
            )
    except InputRejected as exc:
        raise CommandError(exc.message) from exc
    finally:
        bar.close()
    transcription = result.transcription
    if args.srt is not None:
        _write_text(args.srt, segments_to_srt(transcription.segments))
    if args.json:
        payload = transcription.as_dict() | {
            "tags": list(result.hashtags),
            "options": _options_dict(transcription.options),
        }
        if result.link is not None:
            payload["source"] = {
                "url": result.link.url,
                "video_id": result.link.video_id,
                "title": result.link.title,
            }
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(transcription.text)
        if result.hashtags:
            print(" ".join(result.hashtags))
    return 0


def _options_dict(options: TranscribeOptions) -> dict[str, object]:
    """The decoding options actually used, so a result can be reproduced."""
    return {
        "beam_size": options.beam_size,
        "chunk_batch": options.chunk_batch,
        "max_new_tokens": options.max_new_tokens,
    }


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from model.asr.evaluation import UnreadableClipError, evaluate
    from model.asr.normalize import normalize_text

    _quiet_logs(args)
    general = _general_set(settings) if args.general_set else None
    try:
        clips = (
            general.examples if general else read_tsv(args.tsv, allow_outside=args.allow_outside)
        )
    except ManifestError as exc:
        raise CommandError(str(exc)) from exc
    # A reference with no words once normalised (only punctuation, say) has no error rate:
    # such rows are left out and counted; with none left there is nothing to measure.
    scorable = [clip for clip in clips if normalize_text(clip.text)]
    if not scorable:
        raise CommandError(NOTHING_TO_SCORE)
    pipeline = _pipeline(args, settings, with_tags=False)
    try:
        with _model_errors():
            result = evaluate(
                pipeline.models.get(),
                scorable,
                options=pipeline.options,
                limits=pipeline.limits.audio,
                chunk_batch=args.chunk_batch,
            )
    except UnreadableClipError as exc:
        raise CommandError(f"{exc.audio_path}: {audio_error(exc.reason)}") from exc
    if result.rates.n == 0:  # never a WER of 0 measured on nothing
        raise CommandError(NOTHING_TO_SCORE)
    extra: dict[str, object] = {"skipped_no_words": len(clips) - len(scorable)}
    if general:
        extra["general_set"] = general.source
    json.dump(result.as_dict() | extra, sys.stdout, ensure_ascii=False)
    print()
    return 0


def _general_set(settings: Settings) -> GeneralSet:
    """The general set ``EVAL_GENERAL_SET`` names (``training.general_set``)."""
    from training.data import DataError
    from training.general_set import general_set_source, load_general_set

    source = general_set_source(settings.eval_general_set)
    if source is None:
        raise CommandError("Nessun insieme generale: WHISPER_IT_EVAL_GENERAL_SET=none.")
    try:
        return load_general_set(source)
    except DataError as exc:
        raise CommandError(str(exc)) from exc
