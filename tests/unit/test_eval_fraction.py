"""One held-out fraction for the whole installation: ``WHISPER_IT_EVAL_FRACTION`` decides
the split that training uses *and* what ``/stats``, ``/contributors`` and every ``whisper-it
samples`` command report (they used to fall back to 0.1 whatever the setting said)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from bot.commands import samples
from bot.settings import Settings
from storage.audio_store import AudioStore
from storage.samples import EVAL, add_labelled_sample, list_samples
from storage.unit_of_work import Database
from training.config import split_policy

SENTENCES = 40
SAMPLE_RATE = 16_000


def _settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fraction: str) -> Settings:
    monkeypatch.setenv("WHISPER_IT_EVAL_FRACTION", fraction)
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


def _fill(settings: Settings) -> None:
    """Forty different sentences, each with its own (tone) clip, as an admin import."""
    database = Database.open(settings.resolved_database_url)
    store = AudioStore(settings.audio_dir)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    try:
        with database.unit_of_work() as uow:
            for i in range(SENTENCES):
                ref = store.put((0.1 * np.sin(2 * np.pi * (200 + 7 * i) * t)).astype(np.float32))
                add_labelled_sample(uow.session, audio=ref, text=f"frase numero {i}")
            uow.commit()
    finally:
        database.close()


def _cli_stats(settings: Settings, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    parser = argparse.ArgumentParser()
    samples.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["samples", "stats"])
    assert args.func(args, settings) == 0
    return json.loads(capsys.readouterr().out)


def _held_out(settings: Settings) -> int:
    database = Database.open(settings.resolved_database_url)
    try:
        with database.unit_of_work(read_only=True) as uow:
            return len(list_samples(uow.session, EVAL, policy=split_policy(settings.eval_fraction)))
    finally:
        database.close()


def test_samples_stats_follows_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, monkeypatch, "0.5")
    _fill(settings)
    stats = _cli_stats(settings, capsys)
    # What training holds out with this setting, and clearly not the 0.1 default (~4 of 40).
    assert stats["eval"] == _held_out(settings)
    assert stats["eval"] >= 12
    assert stats["train"] + stats["eval"] == SENTENCES


def test_admin_commands_and_cli_report_the_same_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, monkeypatch, "0.5")
    _fill(settings)
    from bot.bootstrap import admin_service

    admin = admin_service(settings, Database.open(settings.resolved_database_url))
    try:
        report = admin.contributors()
        overview = admin.overview()
    finally:
        admin.db.close()
    cli = _cli_stats(settings, capsys)
    assert report.samples.eval == overview.samples.eval == cli["eval"] == _held_out(settings)
    assert sum(c.eval for c in report.contributions) == cli["eval"]


def test_the_cli_flag_still_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _settings(tmp_path, monkeypatch, "0.5")
    _fill(settings)
    parser = argparse.ArgumentParser()
    samples.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["samples", "stats", "--eval-fraction", "0", "--eval-min-sentences", "0"]
    )
    assert args.func(args, settings) == 0
    assert json.loads(capsys.readouterr().out)["eval"] == 0
