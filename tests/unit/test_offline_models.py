"""WHISPER_IT_OFFLINE keeps the speech model off the Hub too (it reached only the tagger):
a Hub model is taken from the cache, by the bot and by the trainer, or refused clearly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import huggingface_hub
import pytest

from bot.bootstrap import model_loader
from bot.settings import Settings
from model.asr.sources import ModelUnavailable


@pytest.mark.parametrize("offline", [True, False])
def test_the_bot_fetches_a_hub_model_from_the_cache_only_when_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool
) -> None:
    calls: list[dict[str, Any]] = []

    def snapshot_download(repo_id: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    settings = Settings(_env_file=None, data_dir=tmp_path, offline=offline)  # type: ignore[call-arg]
    with pytest.raises(ModelUnavailable):
        model_loader(settings)("someone/whisper-italiano")
    assert [call["local_files_only"] for call in calls] == [offline]


def test_the_trainer_is_told_to_stay_offline(tmp_path: Path) -> None:
    from bot.training_control import TrainingControl
    from storage.unit_of_work import Database
    from training.config import RunConfig

    settings = Settings(_env_file=None, data_dir=tmp_path, offline=True)  # type: ignore[call-arg]
    database = Database.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        config = TrainingControl(settings, database).run_config(1)
    finally:
        database.close()
    assert RunConfig.from_json(config.to_json()).offline  # what the training process reads
