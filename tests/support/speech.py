"""Real Italian (and English) speech for tests and benchmarks, synthesised by espeak-ng."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

ITALIAN_SENTENCES = (
    "Buongiorno a tutti, oggi parliamo del tempo a Roma.",
    "La pizza margherita è nata a Napoli.",
    "Domani andiamo al mare con gli amici.",
    "Il treno per Milano parte alle otto.",
    "Mi piace leggere un libro la sera.",
    "La biblioteca comunale è chiusa il lunedì.",
)


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def synthesize(
    text: str,
    out: Path,
    *,
    voice: str = "it",
    speed: int = 135,
    pitch: int = 50,
    sample_rate: int = 16_000,
) -> Path:
    """Write ``text`` spoken by espeak-ng to ``out`` (WAV, or any format ffmpeg knows)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".espeak.wav")
    subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text],
        check=True,
        capture_output=True,
    )
    codec_args = {".ogg": ["-c:a", "libopus"], ".oga": ["-c:a", "libopus"]}.get(out.suffix, [])
    subprocess.run(
        [
            "ffmpeg",
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(raw),
            "-ar",
            str(sample_rate),
            "-ac",
            "1",
            *codec_args,
            str(out),
        ],
        check=True,
    )
    raw.unlink()
    return out


def synthesize_array(text: str, tmp: Path, **kwargs: object) -> np.ndarray:
    """The same speech as float32 16 kHz mono samples."""
    import soundfile

    path = synthesize(text, Path(tmp) / "speech.wav", **kwargs)  # type: ignore[arg-type]
    samples, rate = soundfile.read(path, dtype="float32")
    assert rate == 16_000
    return samples
