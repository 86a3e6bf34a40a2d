"""Installs that fit the role: a front (``whisper-it bot`` with ``WHISPER_IT_WORKERS=0``)
runs on the base install alone, a CPU worker on ``[serve]``. Each runs with the packages it
should not need made unimportable (a ``sitecustomize`` import blocker that also records
each attempt): the real front process while it takes voice notes, a YouTube link and
admin commands, and a worker answers; a worker's services while they transcribe Italian
speech with the real model and tag it. pyproject's extras are checked too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from model.asr.normalize import error_rates
from tests.support.bot_harness import ADMIN, bot_process, bot_process_env
from tests.support.ops_support import free_port, wait_ready, worker_process
from tests.support.speech import synthesize
from tests.support.telegram_emulator import BotApiEmulator
from tests.support.worker_support import tone_wav

REPO = Path(__file__).resolve().parents[2]
# Top-level modules the extras bring (and their heavy dependencies).
NOT_IN_BASE = (
    "torch",
    "transformers",
    "datasets",
    "accelerate",
    "tokenizers",
    "huggingface_hub",
    "sentencepiece",
    "faster_whisper",
    "ctranslate2",
    "av",
    "soundfile",
    "yake",
    "jiwer",
    "yt_dlp",
    "yt_dlp_ejs",
    "deno",
    "psycopg",
)
BLOCKER = """
import importlib.abc, os, sys, traceback

BLOCKED = frozenset({blocked!r})
LOG = os.environ["BLOCKED_IMPORT_LOG"]


class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            with open(LOG, "a") as log:
                log.write(name + "\\n" + "".join(traceback.format_stack(limit=8)) + "\\n")
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""
# What a CPU worker must run without: the [train] and [postgres] extras.
TRAIN_ONLY = ("torch", "transformers", "datasets", "accelerate", "sentencepiece", "psycopg")
SERVE_PROBE = """
import json, sys
from pathlib import Path
from bot.bootstrap import bootstrap
from bot.pipeline import MediaBytes
from bot.settings import Settings

data_dir, cache, wav = (Path(arg) for arg in sys.argv[1:4])
settings = Settings(
    _env_file=None, data_dir=data_dir, model_cache_dir=cache, workers=1, tagger="auto",
    offline=True,
)
services = bootstrap(settings, role="worker")
result = services.pipeline.run(MediaBytes(wav.read_bytes(), "voice"))
text = result.transcription.text
print(json.dumps({"tagger": services.pipeline.tagger.name, "text": text,
                  "tags": services.pipeline.hashtags(text)}))
"""
SENTENCE = "Domani mattina andiamo al mercato a comprare la frutta."
USER = 7001
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def test_extras_split_the_install_by_role() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = " ".join(project["dependencies"]).lower()
    extras = project["optional-dependencies"]
    for heavy in ("torch", "transformers", "faster-whisper", "ctranslate2", "yt-dlp", "psycopg"):
        assert heavy not in base, heavy
    assert any(r.startswith("faster-whisper") for r in extras["serve"])
    assert any(r.startswith("torch") for r in extras["train"])
    assert "whisper-it[serve]" in extras["train"]  # training evaluates with the serving engine
    assert any(r.startswith("psycopg") for r in extras["postgres"])
    assert extras["all"] == ["whisper-it[serve,train,postgres]"]
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert '".[all]"' in setup and '".[all,test]"' in setup


def _blocker(tmp_path: Path, blocked: tuple[str, ...]) -> tuple[Path, Path]:
    """A folder whose sitecustomize makes ``blocked`` unimportable, and its attempts log."""
    blocker_dir = tmp_path / "blocker"
    blocker_dir.mkdir()
    (blocker_dir / "sitecustomize.py").write_text(BLOCKER.format(blocked=blocked))
    return blocker_dir, tmp_path / "blocked-imports.log"


@pytest.mark.slow
def test_a_cpu_worker_transcribes_and_tags_with_serve_alone(
    tmp_path: Path, speech_dir: Path, model_cache: Path
) -> None:
    blocker_dir, attempts = _blocker(tmp_path, TRAIN_ONLY)
    wav = synthesize(SENTENCE, speech_dir / "serve-only.wav")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHISPER_IT_")}
    env |= {
        "PYTHONPATH": os.pathsep.join((str(blocker_dir), str(REPO))),
        "BLOCKED_IMPORT_LOG": str(attempts),
    }
    result = subprocess.run(
        [sys.executable, "-c", SERVE_PROBE, str(tmp_path / "data"), str(model_cache), str(wav)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["tagger"] == "keywords"  # text2tags needs [train]: the fallback
    assert error_rates([SENTENCE], [answer["text"]]).wer < 0.5, answer
    assert answer["tags"]
    # transformers was looked for (the tagger's choice "auto": this proves the blocker
    # works), and nothing else of [train].
    tried = {line for line in attempts.read_text().splitlines() if line in TRAIN_ONLY}
    assert tried == {"transformers"}, tried


def test_a_front_runs_on_the_base_install_alone(tmp_path: Path) -> None:
    blocker_dir, attempts = _blocker(tmp_path, NOT_IN_BASE)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    front_port, worker_port = free_port(), free_port()
    with BotApiEmulator() as emu:
        common = {"TAGGER": "auto", "BATCH_SIZE": "1", "WORKER_POLL_SECONDS": "0.2"}
        front_env = bot_process_env(
            emu, tmp_path / "data", tmp_path / "cache", WORKERS="0", **common
        )
        front_env |= {
            "WHISPER_IT_HTTP_PORT": str(front_port),
            "PYTHONPATH": os.pathsep.join((str(blocker_dir), str(REPO))),
            "BLOCKED_IMPORT_LOG": str(attempts),
        }
        worker_env = bot_process_env(
            emu, tmp_path / "data", tmp_path / "cache", WORKERS="1", TAGGER="off"
        )
        worker_env["WHISPER_IT_HTTP_PORT"] = str(worker_port)
        # The blocker works: the front's environment cannot import torch.
        probe = subprocess.run(
            [sys.executable, "-c", "import torch"], env=front_env, capture_output=True
        )
        assert probe.returncode == 1 and b"blocked" in probe.stderr
        assert attempts.read_text().startswith("torch\n")
        attempts.unlink()
        front_log, worker_log = tmp_path / "front.log", tmp_path / "worker.log"
        with bot_process(front_env, cwd, front_log) as front:
            wait_ready(front_port, front, front_log)
            with worker_process(worker_env, cwd, worker_log) as worker:
                wait_ready(worker_port, worker, worker_log)
                emu.send_text(user_id=USER, text="/start")
                emu.send_voice(user_id=USER, data=tone_wav(1.5), duration=2)
                emu.wait_for(
                    lambda: "buongiorno a tutti" in [m.content for m in emu.messages(USER)],
                    timeout=120,
                )
                emu.send_text(user_id=ADMIN, text="/stats")
                emu.wait_for(
                    lambda: any("Statistiche" in m.content for m in emu.messages(ADMIN)),
                    timeout=60,
                )
                emu.send_text(user_id=USER, text=VIDEO)
                emu.wait_for(lambda: len(emu.messages(USER)) >= 3, timeout=60)  # queued
            assert front.poll() is None, front_log.read_text()[-3000:]
    blocked = attempts.read_text() if attempts.exists() else ""
    assert blocked == "", blocked[:3000]
    assert "Traceback" not in front_log.read_text()
