"""Each setting is declared once: the training and gate knobs come from their policies'
declarations (training.configurable), with the policies' defaults, and a run's
configuration carries what the operator set."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.settings import Settings
from bot.training_control import TrainingControl
from storage.unit_of_work import Database
from training.arguments import FinetuneArguments
from training.configurable import setting_fields
from training.gate_policy import GatePolicy

POLICIES = (FinetuneArguments, GatePolicy)


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize("policy", POLICIES, ids=lambda p: p.__name__)
def test_policy_knobs_are_settings_with_the_policys_defaults(policy: type) -> None:
    fields = Settings.model_fields
    declared = setting_fields(policy)
    assert declared, "the policy declares no settings"
    for f in declared:
        assert f.setting in fields, f.setting
        assert fields[f.setting].default == getattr(policy(), f.field), f.setting
        assert fields[f.setting].description == f.help


def test_todays_setting_names_are_kept() -> None:
    names = set(Settings.model_fields)
    for name in (
        "train_max_steps",
        "train_learning_rate",
        "train_decoder",
        "train_gradient_accumulation",
        "gate_confidence",
        "gate_recent_tolerance",
        "gate_min_eval_sentences",
    ):
        assert name in names


def test_a_run_configuration_carries_the_operators_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISPER_IT_TRAIN_LEARNING_RATE", "0.0001")
    monkeypatch.setenv("WHISPER_IT_TRAIN_DECODER", "all")
    monkeypatch.setenv("WHISPER_IT_GATE_RECENT_TOLERANCE", "0.25")
    monkeypatch.setenv("WHISPER_IT_TRAIN_MAX_MINUTES", "2")
    monkeypatch.setenv("WHISPER_IT_TRAIN_KEEP_REFUSED", "true")
    settings = _settings(tmp_path)
    db = Database.open(settings.resolved_database_url)
    try:
        config = TrainingControl(settings, db).run_config(1)
    finally:
        db.close()
    assert config.finetune.learning_rate == 1e-4
    assert config.finetune.decoder == "all"
    assert config.finetune.max_train_seconds == 120
    assert config.gate.recent_tolerance == 0.25
    assert config.keep_refused is True
    # Everything else is the policies' own default.
    assert config.finetune.warmup_ratio == FinetuneArguments().warmup_ratio
    assert config.gate.confidence == GatePolicy().confidence


def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHISPER_IT_TRAIN_MODE", "tpu")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("WHISPER_IT_TRAIN_MODE", "cpu")
    monkeypatch.setenv("WHISPER_IT_GATE_MIN_EVAL_SENTENCES", "1")
    with pytest.raises(ValueError):
        Settings(_env_file=None)  # type: ignore[call-arg]
