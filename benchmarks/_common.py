"""Shared helpers for the benchmark scripts (``benchmarks/*.py``; this folder is not a package).

A benchmark script adds the repository root to ``sys.path`` and imports this module as
``_common`` (the script's own folder is on ``sys.path`` already). The API, kept small:

- ``RESULTS_DIR``, ``DEFAULT_CACHE_DIR``: where results go; where models are cached
  (the bot's default ``data/cache``, so a model assembled once is reused);
- ``Timing`` + ``time_runs(fn, runs=, warmup=)`` and ``time_interleaved({name: fn}, ...)``:
  warm-up calls, then N timed calls, the median reported (the machine is shared and noisy;
  interleaving the contenders spreads the noise over all of them alike);
- ``machine_info()``: host, CPU, load average, package versions, git commit, time;
- ``markdown_table(headers, rows)`` and ``write_results(name, data, markdown)``: one JSON
  and one Markdown file per benchmark under ``RESULTS_DIR``;
- ``italian_speech(...)`` -> ``Speech``: espeak-ng Italian sentences (several voices, short
  pauses) concatenated up to a target length, with the reference text, for WER;
- ``ITALIAN_SENTENCES``: the sentence pool it draws from.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_CACHE_DIR = REPO_ROOT / "data" / "cache"
SAMPLE_RATE = 16_000
PACKAGES = (
    "ctranslate2",
    "faster-whisper",
    "torch",
    "transformers",
    "yt-dlp",
    "av",
    "numpy",
    "onnxruntime",
)

# Spoken without digits or abbreviations, so the reference text is what espeak says.
ITALIAN_SENTENCES: tuple[str, ...] = (
    "Buongiorno a tutti, oggi parliamo del tempo a Roma.",
    "La pizza margherita è nata a Napoli.",
    "Domani andiamo al mare con gli amici.",
    "Il treno per Milano parte alle otto.",
    "Mi piace leggere un libro la sera.",
    "La biblioteca comunale è chiusa il lunedì.",
    "Mia sorella lavora in un ospedale vicino alla stazione.",
    "Questa mattina il cielo era coperto e faceva freddo.",
    "Abbiamo comprato il pane e la frutta al mercato.",
    "Il museo apre alle nove e chiude alle sei di sera.",
    "I bambini giocano nel parco dopo la scuola.",
    "Vorrei prenotare un tavolo per due persone.",
    "La riunione è stata spostata a giovedì pomeriggio.",
    "Il nostro gatto dorme sempre sul divano.",
    "Per arrivare in centro bisogna prendere l'autobus.",
    "Ho dimenticato l'ombrello in ufficio.",
    "La lezione di storia è durata due ore.",
    "Mio nonno coltivava pomodori e basilico nell'orto.",
    "In estate le giornate sono lunghe e calde.",
    "Il medico mi ha consigliato di camminare ogni giorno.",
    "Il concerto di ieri sera è stato bellissimo.",
    "Firenze è famosa per i suoi musei e le sue chiese.",
    "Devo ancora rispondere a molte lettere.",
    "Il caffè al bar costa poco ma è molto buono.",
    "La squadra ha vinto la partita all'ultimo minuto.",
    "Il fiume attraversa la città da nord a sud.",
    "Stasera guardiamo un film italiano in televisione.",
    "Le montagne erano coperte di neve fino a maggio.",
    "Il professore ha spiegato la regola con pazienza.",
    "Abbiamo fatto una lunga passeggiata lungo il lago.",
    "La farmacia di turno è aperta anche la domenica.",
    "Il vino rosso si serve a temperatura ambiente.",
    "Ogni anno migliaia di turisti visitano Venezia.",
    "Il mio telefono non funziona più da ieri.",
    "La nonna prepara le lasagne per il pranzo di Natale.",
    "Il sindaco ha inaugurato la nuova piazza.",
    "Gli studenti hanno superato l'esame di matematica.",
    "Il giardino è pieno di fiori in primavera.",
    "Scusi, sa dirmi dove si trova la posta?",
    "Abbiamo deciso di partire presto per evitare il traffico.",
)
ITALIAN_VOICES: tuple[str, ...] = ("it", "it+m3", "it+f2", "it+m5", "it+f4", "it+m1")
SPEEDS: tuple[int, ...] = (135, 150, 125, 145)
PITCHES: tuple[int, ...] = (50, 40, 60, 45)
PAUSE_SECONDS: tuple[float, ...] = (0.3, 0.6, 0.45, 0.8)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call (warm-up calls excluded); ``result``: the last call's value."""

    runs: tuple[float, ...]
    warmup: tuple[float, ...] = ()
    result: Any = field(default=None, compare=False, repr=False)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict[str, object]:
        return {
            "median_s": round(self.median, 4),
            "min_s": round(min(self.runs), 4),
            "max_s": round(max(self.runs), 4),
            "runs_s": [round(s, 4) for s in self.runs],
            "warmup_s": [round(s, 4) for s in self.warmup],
        }


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def time_runs(fn: Callable[[], Any], *, runs: int, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times (kept apart from the median), then ``runs`` times."""
    return time_interleaved({"_": fn}, runs=runs, warmup=warmup)["_"]


def time_interleaved(
    fns: Mapping[str, Callable[[], Any]], *, runs: int, warmup: int = 1
) -> dict[str, Timing]:
    """Like :func:`time_runs` for several contenders, alternating them run by run."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    warm: dict[str, list[float]] = {name: [] for name in fns}
    timed: dict[str, list[float]] = {name: [] for name in fns}
    last: dict[str, Any] = {}
    for _ in range(warmup):
        for name, fn in fns.items():
            seconds, last[name] = _timed(fn)
            warm[name].append(seconds)
    for _ in range(runs):
        for name, fn in fns.items():
            seconds, last[name] = _timed(fn)
            timed[name].append(seconds)
    return {name: Timing(tuple(timed[name]), tuple(warm[name]), last.get(name)) for name in fns}


# --------------------------------------------------------------------------- machine


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{head}+dirty" if dirty else head


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, object]:
    """Where and when the numbers were taken; call it at the start of a benchmark."""
    return {
        "timestamp_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_1_5_15": load_average(),
        "git_commit": _git_commit(),
        "packages": {name: _version(name) for name in PACKAGES},
    }


# --------------------------------------------------------------------------- output


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join("---" for _ in headers) + " |",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_results(
    name: str, data: Mapping[str, object], markdown: str, *, results_dir: Path = RESULTS_DIR
) -> tuple[Path, Path]:
    """Write ``{name}.json`` and ``{name}.md`` (atomically: a crash leaves the old ones)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    paths = (results_dir / f"{name}.json", results_dir / f"{name}.md")
    texts = (json.dumps(data, indent=2, ensure_ascii=False) + "\n", markdown)
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths


# --------------------------------------------------------------------------- speech


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # float32 mono SAMPLE_RATE
    text: str  # the reference: every sentence spoken, in order
    sentences: int

    @property
    def duration(self) -> float:
        return self.samples.size / SAMPLE_RATE


def italian_speech(
    target_seconds: float,
    workdir: Path,
    *,
    vary_voices: bool = True,
    start: int = 0,
) -> Speech:
    """espeak-ng Italian sentences, each followed by a short pause, up to ``target_seconds``.

    Sentences are taken from ``ITALIAN_SENTENCES`` in order (cycling), starting at ``start``;
    the clip stops before the sentence that would pass the target, so it is never longer
    (a 30 s clip stays one Whisper window). ``vary_voices`` cycles voices, speeds, pitches.
    """
    from model.asr.audio import decode_audio
    from tests.support.speech import synthesize

    workdir.mkdir(parents=True, exist_ok=True)
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    total = 0
    limit = int(target_seconds * SAMPLE_RATE)
    i = 0
    while True:
        sentence = ITALIAN_SENTENCES[(start + i) % len(ITALIAN_SENTENCES)]
        style = i if vary_voices else 0
        wav = synthesize(
            sentence,
            workdir / f"s{i:04d}.wav",
            voice=ITALIAN_VOICES[style % len(ITALIAN_VOICES)],
            speed=SPEEDS[style % len(SPEEDS)],
            pitch=PITCHES[style % len(PITCHES)],
        )
        samples = decode_audio(wav).samples
        wav.unlink()
        pause = np.zeros(int(PAUSE_SECONDS[i % len(PAUSE_SECONDS)] * SAMPLE_RATE), np.float32)
        if total + samples.size > limit:
            break
        pieces += [samples, pause]
        texts.append(sentence)
        total += samples.size + pause.size
        i += 1
    if not texts:
        raise ValueError(f"no sentence fits in {target_seconds} s")
    clip = np.concatenate(pieces)[:limit]
    return Speech(samples=clip.astype(np.float32), text=" ".join(texts), sentences=len(texts))


def write_wav(samples: np.ndarray, path: Path) -> Path:
    """16-bit PCM WAV at SAMPLE_RATE (for muxing into a video, or listening)."""
    import wave

    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(pcm.tobytes())
    return path
