"""Placeholder model versions for tests of the registry, promotion and /rollback: folders
the registry accepts as Hugging Face and CTranslate2 models, which nothing ever loads."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from model.asr.registry import ModelRegistry


def fake_hf(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (path / "model.safetensors").write_bytes(b"weights")
    return path


def fake_ct2(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    name = b"WhisperSpec\0"
    header = struct.pack("<I", 6) + struct.pack("<H", len(name)) + name + struct.pack("<I", 1)
    (path / "model.bin").write_bytes(header)
    (path / "config.json").write_text("{}")
    return path


def install_fake_version(registry: ModelRegistry, tmp: Path, name: str, parent: str) -> None:
    """Version ``name`` (trained from ``parent``) in ``registry``, not serving."""
    registry.install(
        name,
        hf_dir=fake_hf(tmp / f"{name}-hf"),
        ct2_dir=fake_ct2(tmp / f"{name}-ct2"),
        metrics={"parent": parent, "created_at": name},
        card=f"# {name}\n",
        move=True,
    )
