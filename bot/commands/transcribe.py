"""``whisper-it transcribe`` (a file or a link) and ``whisper-it evaluate`` (WER on a TSV).

stdout carries only the result (text, or JSON with ``--json``); progress and errors go to
stderr, so ``whisper-it transcribe URL --json > out.json`` stays machine-readable.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from bot.cli import CommandError
from bot.messages import MODEL_UNAVAILABLE, audio_error, link_error
from bot.services import TranscriptionService
from bot.settings import Settings
from bot.wiring import audio_limits, build_transcription_service, download_limits
from model.audio import AudioError, AudioLimits, DecodedAudio, decode_audio
from model.engines import (
    DEFAULT_BATCH_SIZE,
    ENGINES,
    LONG_AUDIO_SECONDS,
    TranscribeOptions,
    fast_path_options,
)
from model.normalize import error_rates
from model.subtitles import segments_to_srt
from model.youtube import (
    YOUTUBE_HOSTS,
    DownloadedMedia,
    DownloadProgress,
    LinkError,
    VideoLink,
    download_audio,
    parse_link,
)

TEMP_PREFIX = "whisper-it-"
YTDLP_LOGGER = "model.youtube"

STAGE_DOWNLOAD = "Download"
STAGE_TRANSCRIBE = "Trascrizione"
FILE_NOT_FOUND = "file non trovato: {path}"
NOT_A_FILE = "non è un file: {path}"
CANNOT_WRITE = "impossibile scrivere {path}: {error}"
TSV_BAD_ROW = "{path}:{line}: attese due colonne, percorso_audio<TAB>testo"
TSV_EMPTY = "{path} non contiene righe"
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
    evaluate.add_argument("tsv", type=Path, help="rows: audio_path<TAB>reference text")
    _model_arguments(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model spec (default: the current model)")
    parser.add_argument("--engine", choices=ENGINES, help="inference engine")
    parser.add_argument("--beam-size", type=int, help="beam size (1 = greedy)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help=(
            "batched decoding, ct2 engine (0 = sequential; default: "
            f"{DEFAULT_BATCH_SIZE} for audio over {LONG_AUDIO_SECONDS:.0f} s)"
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


def _download_reporter(bar: ProgressBar):
    def report(update: DownloadProgress) -> None:
        bar.update(STAGE_DOWNLOAD, update.fraction, detail=_size(update.downloaded_bytes))

    return report


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:.0f} kB"


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


def _service(
    args: argparse.Namespace, settings: Settings, *, with_tags: bool
) -> TranscriptionService:
    from model.tags import TaggerUnavailable

    try:
        service = build_transcription_service(
            settings, spec=args.model, engine=args.engine, with_tags=with_tags
        )
    except TaggerUnavailable as exc:
        raise CommandError(TAGGER_UNAVAILABLE.format(detail=exc)) from exc
    if args.beam_size:
        service.options = replace(service.options, beam_size=args.beam_size)
    return service


def _load_model(service: TranscriptionService) -> None:
    from model.convert import ConversionError
    from model.sources import ModelUnavailable

    try:
        service.models.get()
    except (ModelUnavailable, ConversionError) as exc:
        raise CommandError(MODEL_UNAVAILABLE.format(detail=exc)) from exc


def _decode(path: Path, settings: Settings, limits: AudioLimits) -> DecodedAudio:
    try:
        return decode_audio(path, limits=limits)
    except AudioError as exc:
        raise CommandError(
            audio_error(
                exc.reason,
                max_seconds=settings.max_audio_seconds,
                max_mb=limits.max_bytes / 2**20,
            )
        ) from exc


def _existing_file(source: str) -> Path:
    path = Path(source).expanduser()
    if not path.exists():
        raise CommandError(FILE_NOT_FOUND.format(path=source))
    if not path.is_file():
        raise CommandError(NOT_A_FILE.format(path=source))
    return path


def _link_error(exc: LinkError, settings: Settings) -> CommandError:
    return CommandError(link_error(exc.reason, max_seconds=settings.max_audio_seconds))


def _download(
    source: str, dest: Path, settings: Settings, bar: ProgressBar
) -> tuple[VideoLink, DownloadedMedia]:
    try:
        link = parse_link(source, extra_hosts=settings.url_hosts - YOUTUBE_HOSTS)
        media = download_audio(
            link, dest, limits=download_limits(settings), progress=_download_reporter(bar)
        )
    except LinkError as exc:
        bar.close()
        raise _link_error(exc, settings) from exc
    return link, media


def _write_text(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CommandError(CANNOT_WRITE.format(path=path, error=exc.strerror or exc)) from exc


# --------------------------------------------------------------------------- commands


@dataclass(frozen=True)
class _Input:
    audio: DecodedAudio
    source: dict[str, str | None] | None  # for links: url, video_id, title


def _read_input(args: argparse.Namespace, settings: Settings, bar: ProgressBar) -> _Input:
    if not looks_like_url(args.source, hosts=settings.url_hosts):
        path = _existing_file(args.source)
        return _Input(_decode(path, settings, audio_limits(settings)), None)
    # The download lives in a temporary folder that is removed whatever happens.
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as tmp:
        link, media = _download(args.source, Path(tmp), settings, bar)
        limits = replace(audio_limits(settings), max_bytes=download_limits(settings).max_bytes)
        audio = _decode(media.path, settings, limits)
    source = {
        "url": link.url,
        "video_id": media.video_id,
        "title": media.title,
    }
    return _Input(audio, source)


def run_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    _quiet_logs(args)
    if args.srt is not None and not args.srt.parent.is_dir():
        raise CommandError(FILE_NOT_FOUND.format(path=args.srt.parent))
    bar = ProgressBar(sys.stderr, enabled=not args.no_progress)
    try:
        # Input first: a bad file or link fails before any model is loaded.
        given = _read_input(args, settings, bar)
        service = _service(args, settings, with_tags=not args.no_tags)
        _load_model(service)
        options = fast_path_options(
            service.options, duration=given.audio.duration, batch_size=args.batch_size
        )
        bar.update(STAGE_TRANSCRIBE, 0.0)
        transcription = service.transcribe(
            given.audio,
            options=options,
            progress=lambda fraction: bar.update(STAGE_TRANSCRIBE, fraction),
        )
        bar.update(STAGE_TRANSCRIBE, 1.0)
    finally:
        bar.close()
    hashtags = service.hashtags(transcription.text)
    if args.srt is not None:
        _write_text(args.srt, segments_to_srt(transcription.segments))
    if args.json:
        payload = transcription.as_dict() | {
            "tags": list(hashtags),
            "options": _options_dict(transcription.options),
        }
        if given.source is not None:
            payload["source"] = given.source
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(transcription.text)
        if hashtags:
            print(" ".join(hashtags))
    return 0


def _options_dict(options: TranscribeOptions) -> dict[str, object]:
    """The decoding options actually used, so a result can be reproduced."""
    return {
        "beam_size": options.beam_size,
        "batch_size": options.batch_size,
        "max_new_tokens": options.max_new_tokens,
    }


def read_tsv(path: Path) -> list[tuple[Path, str]]:
    """Rows ``audio_path<TAB>reference``; paths are relative to the TSV's folder.

    Blank lines, ``#`` comments and a header row ``audio_path<TAB>reference`` are skipped.
    """
    if not path.is_file():
        raise CommandError(FILE_NOT_FOUND.format(path=path))
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise CommandError(TSV_BAD_ROW.format(path=path, line=number))
            if number == 1 and row[0].strip().lower() in ("audio_path", "path", "audio"):
                continue
            audio_path = (path.parent / row[0]).resolve()
            if not audio_path.is_file():  # before the model loads, not after half the set
                raise CommandError(f"{path}:{number}: " + FILE_NOT_FOUND.format(path=audio_path))
            rows.append((audio_path, row[1]))
    if not rows:
        raise CommandError(TSV_EMPTY.format(path=path))
    return rows


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    _quiet_logs(args)
    rows = read_tsv(args.tsv)
    service = _service(args, settings, with_tags=False)
    _load_model(service)
    limits = audio_limits(settings)
    references, hypotheses = [], []
    audio_seconds = 0.0
    started = time.perf_counter()
    for audio_path, reference in rows:
        try:
            audio = decode_audio(audio_path, limits=limits)
        except AudioError as exc:
            raise CommandError(f"{audio_path}: {audio_error(exc.reason)}") from exc
        audio_seconds += audio.duration
        options = fast_path_options(
            service.options, duration=audio.duration, batch_size=args.batch_size
        )
        hypotheses.append(service.transcribe(audio, options=options).text)
        references.append(reference)
    elapsed = time.perf_counter() - started
    rates = error_rates(references, hypotheses)
    model = service.models.get()
    result = rates.as_dict() | {
        "audio_seconds": round(audio_seconds, 3),
        "elapsed": round(elapsed, 3),
        "rtf": round(elapsed / audio_seconds, 4) if audio_seconds else None,
        "model": model.model_name,
        "engine": model.engine,
    }
    json.dump(result, sys.stdout, ensure_ascii=False)
    print()
    return 0
