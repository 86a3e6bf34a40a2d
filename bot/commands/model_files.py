"""``whisper-it import-model`` (CTranslate2 -> Hugging Face) and ``export-model`` (back)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cli import CommandError
from bot.messages import MODEL_UNAVAILABLE
from bot.settings import Settings

QUANTIZATIONS = ("int8", "int8_float16", "int16", "float16", "bfloat16", "float32")
# model.asr's own texts are English (library layer): what the user gave, said in Italian.
NO_MODEL_FOLDER = "cartella del modello inesistente: {path}"
NOT_A_MODEL = "{path} non contiene né un modello CTranslate2 né un checkpoint Whisper"
NOT_CT2 = "{path} non è un modello CTranslate2"
NOT_HF = (
    "{path} non è un checkpoint Whisper di Hugging Face (servono il config.json di un "
    "modello whisper e i pesi)"
)


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
            raise CommandError(NOT_CT2.format(path=args.ct2_dir))
        out = import_ct2_to_hf(found.path, args.out_dir)
    except ModelUnavailable as exc:
        raise CommandError(_unavailable(args.ct2_dir, exc)) from exc
    except ConversionError as exc:
        raise CommandError(str(exc)) from exc
    print(out)
    return 0


def _unavailable(spec: str, exc: Exception) -> str:
    """Why ``locate`` found no model at ``spec``: a local folder that is not there or holds
    no model, in Italian; otherwise (a packaged name, the Hub) the bot's line with the
    detail."""
    from model.asr.sources import PACKAGED_PREFIX

    if spec.startswith(PACKAGED_PREFIX) or exc.__cause__ is not None:  # fetched, or packaged
        return MODEL_UNAVAILABLE.format(detail=exc)
    exists = Path(spec).expanduser().exists()
    return (NOT_A_MODEL if exists else NO_MODEL_FOLDER).format(path=spec)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from model.asr.convert import export_hf_to_ct2
    from model.asr.folders import ConversionError, is_hf_dir

    if not is_hf_dir(args.hf_dir):
        missing = not args.hf_dir.exists()
        raise CommandError((NO_MODEL_FOLDER if missing else NOT_HF).format(path=args.hf_dir))
    try:
        out = export_hf_to_ct2(args.hf_dir, args.out_dir, quantization=args.quantization)
    except ConversionError as exc:
        raise CommandError(str(exc)) from exc
    print(out)
    return 0
