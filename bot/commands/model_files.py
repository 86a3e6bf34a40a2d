"""``whisper-it import-model`` (CTranslate2 -> Hugging Face) and ``export-model`` (back)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli import CommandError
from bot.settings import Settings

QUANTIZATIONS = ("int8", "int8_float16", "int16", "float16", "bfloat16", "float32")


def register(subparsers: argparse._SubParsersAction) -> None:
    imp = subparsers.add_parser(
        "import-model", help="convert a CTranslate2 Whisper model into a trainable HF checkpoint"
    )
    imp.add_argument("ct2_dir", help="CTranslate2 model folder, or packaged:whisper-base")
    imp.add_argument("out_dir", type=Path)
    imp.set_defaults(func=run_import)

    exp = subparsers.add_parser("export-model", help="convert an HF checkpoint to CTranslate2")
    exp.add_argument("hf_dir", type=Path)
    exp.add_argument("out_dir", type=Path)
    exp.add_argument("--quantization", choices=QUANTIZATIONS, default="int8")
    exp.set_defaults(func=run_export)


def run_import(args: argparse.Namespace, settings: Settings) -> int:
    from model.asr.convert import import_ct2_to_hf
    from model.asr.folders import ConversionError
    from model.asr.sources import ModelUnavailable, locate

    try:
        found = locate(args.ct2_dir, cache_dir=settings.cache_dir)
        if found.kind != "ct2":
            raise CommandError(f"{args.ct2_dir} is not a CTranslate2 model")
        out = import_ct2_to_hf(found.path, args.out_dir)
    except (ModelUnavailable, ConversionError) as exc:
        raise CommandError(str(exc)) from exc
    print(out)
    return 0


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from model.asr.convert import export_hf_to_ct2
    from model.asr.folders import ConversionError, is_hf_dir

    if not is_hf_dir(args.hf_dir):
        raise CommandError(f"{args.hf_dir} is not a Hugging Face Whisper checkpoint")
    try:
        out = export_hf_to_ct2(args.hf_dir, args.out_dir, quantization=args.quantization)
    except ConversionError as exc:
        raise CommandError(str(exc)) from exc
    print(out)
    return 0
