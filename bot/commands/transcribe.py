"""``whisper-it transcribe`` and ``whisper-it evaluate``."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from bot.cli import CommandError
from bot.messages import audio_error
from bot.settings import Settings
from bot.wiring import build_transcription_service
from model.audio import AudioError
from model.engines import ENGINES
from model.normalize import error_rates


def register(subparsers: argparse._SubParsersAction) -> None:
    transcribe = subparsers.add_parser("transcribe", help="transcribe an audio/video file")
    transcribe.add_argument("source", help="audio or video file")
    _model_arguments(transcribe)
    transcribe.add_argument("--json", action="store_true", help="print JSON with segments")
    transcribe.add_argument("--no-tags", action="store_true", help="skip hashtags")
    transcribe.set_defaults(func=run_transcribe)

    evaluate = subparsers.add_parser("evaluate", help="WER/CER of a model on a labelled TSV")
    evaluate.add_argument("tsv", type=Path, help="rows: audio_path<TAB>reference text")
    _model_arguments(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model spec (default: the current model)")
    parser.add_argument("--engine", choices=ENGINES, help="inference engine")
    parser.add_argument("--beam-size", type=int, help="beam size (1 = greedy)")
    parser.add_argument("--batch-size", type=int, default=0, help="batched decoding (ct2)")


def _service(args: argparse.Namespace, settings: Settings, *, with_tags: bool):
    service = build_transcription_service(
        settings, spec=args.model, engine=args.engine, with_tags=with_tags
    )
    options = service.options
    if args.beam_size:
        options = replace(options, beam_size=args.beam_size)
    if args.batch_size:
        options = replace(options, batch_size=args.batch_size)
    service.options = options
    return service


def _load_model(service) -> None:
    from model.convert import ConversionError
    from model.sources import ModelUnavailable

    try:
        service.models.get()
    except (ModelUnavailable, ConversionError) as exc:
        raise CommandError(str(exc)) from exc


def run_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    source = Path(args.source)
    if not source.is_file():
        raise CommandError(f"file non trovato: {args.source}")
    service = _service(args, settings, with_tags=not args.no_tags)
    try:
        audio = service.decode(source)
    except AudioError as exc:
        raise CommandError(
            audio_error(
                exc.reason,
                max_seconds=settings.max_audio_seconds,
                max_mb=settings.max_file_bytes / 2**20,
            )
        ) from exc
    _load_model(service)
    transcription = service.transcribe(audio)
    hashtags = service.hashtags(transcription.text)
    if args.json:
        payload = transcription.as_dict() | {"tags": list(hashtags)}
        json.dump(payload, sys.stdout, ensure_ascii=False, indent=2)
        print()
    else:
        print(transcription.text)
        if hashtags:
            print(" ".join(hashtags))
    return 0


def read_tsv(path: Path) -> list[tuple[Path, str]]:
    """Rows ``audio_path<TAB>reference``; paths are relative to the TSV's folder."""
    if not path.is_file():
        raise CommandError(f"file non trovato: {path}")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise CommandError(f"{path}:{number}: expected audio_path<TAB>reference")
            rows.append(((path.parent / row[0]).resolve(), row[1]))
    if not rows:
        raise CommandError(f"{path} has no rows")
    return rows


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    rows = read_tsv(args.tsv)
    service = _service(args, settings, with_tags=False)
    _load_model(service)
    references, hypotheses = [], []
    audio_seconds = 0.0
    started = time.perf_counter()
    for audio_path, reference in rows:
        try:
            audio = service.decode(audio_path)
        except AudioError as exc:
            raise CommandError(f"{audio_path}: {exc}") from exc
        audio_seconds += audio.duration
        hypotheses.append(service.transcribe(audio).text)
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
