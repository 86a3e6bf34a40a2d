from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.speech import espeak_available

# OpenMP threads (torch, CTranslate2) that wait by spinning: with two test processes on two
# cores, a 2-thread decode spins against the other process and the transformers engine ran
# the same long clip in 226 s instead of 45 s. Passive waiting changes no result, and the
# processes the tests start (trainers, workers) inherit it. Set before torch is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# What ``fake_transcriber`` hears in every clip.
FAKE_TRANSCRIPT = "Il treno per Milano parte alle otto e arriva a Roma nel pomeriggio."


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Fail loudly rather than skip: a missing espeak-ng is a broken set-up, not a reason
    # to test less. scripts/setup.sh installs it.
    assert espeak_available(), "espeak-ng is not installed (scripts/setup.sh installs it)"
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache folder for the whole run: the packaged model is assembled once."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_whisper(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random 128-mel Whisper (``tests.support.tiny_whisper``), built once: the
    training mechanics (steps, checkpoints, resume, averaging) in seconds, not minutes."""
    from model.asr.sources import hf_dir
    from tests.support.tiny_whisper import build_tiny_whisper

    reference = hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    return build_tiny_whisper(reference, tmp_path_factory.mktemp("models") / "tiny-128")


@pytest.fixture(scope="session")
def ct2_transcriber(model_cache: Path):
    from model.asr.sources import load_transcriber

    return load_transcriber("packaged:whisper-base", engine="ct2", cache_dir=model_cache)


@pytest.fixture
def fake_transcriber():
    """A stand-in model for bot behaviour that does not depend on what the model hears
    (limits, groups, admin commands): it answers one fixed Italian sentence at once."""
    from tests.support.worker_support import FakeTranscriber

    return FakeTranscriber(text=FAKE_TRANSCRIPT)


@pytest.fixture(scope="session")
def media_server(tmp_path_factory: pytest.TempPathFactory):
    """A loopback stand-in for YouTube (tests/support/media_server.py): an espeak MP4 and a page."""
    from tests.support.media_server import build_media_site, serve_directory

    root = build_media_site(tmp_path_factory.mktemp("media-site"))
    with serve_directory(root) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL server for the whole run (tests/support/postgres.py); an empty database."""
    from tests.support.postgres import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def drip():
    """A listed host that drips one byte every few seconds (tests/support/drip_server.py)."""
    from tests.support.drip_server import drip_server

    with drip_server() as server:
        yield server
