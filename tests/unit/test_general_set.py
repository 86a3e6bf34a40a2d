"""The general set shipped with the package: what it holds, how a setting chooses it, that a
run judges it by default, and that nothing the bot stores can reach it."""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

from bot.settings import Settings
from bot.training_control import TrainingControl
from model.asr.evaluation import ClipScore, Evaluation
from model.asr.normalize import error_rates, normalize_text
from model.asr.registry import ModelRegistry
from training.config import RunConfig
from training.data import Example
from training.gate_policy import GENERAL_SET
from training.general_set import (
    OFF,
    PACKAGE,
    PACKAGED,
    general_set_source,
    load_general_set,
    packaged_manifest,
)
from training.judging import _eval_sets
from training.snapshot import TRAIN_MANIFEST, write_manifest

REPO = Path(__file__).resolve().parents[2]
RENDER_SCRIPT = REPO / "scripts" / "render_general_set.py"
# The other sentence lists of the project (the benchmarks', the tests').
OTHER_SENTENCE_FILES = ("benchmarks/_demo_sentences.py", "benchmarks/_common.py")
OTHER_SENTENCE_FOLDERS = ("tests/support",)
PACKAGED_CLIPS = 160
VOICES = {"festival-lp", "festival-pc"}
# "A few MB at most" in the wheel; Opus 24 kbps keeps it near two.
MAX_PACKAGED_BYTES = 3_000_000
NUMBER_WORDS = {"due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci",
                "venti", "cento", "mille"}  # fmt: skip


def _render_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("render_general_set", RENDER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp_path: Path, general: str | None) -> RunConfig:
    return RunConfig(
        run_id=1, database_url="", audio_dir=str(tmp_path / "audio"), models_dir="",
        cache_dir="", runs_dir=str(tmp_path / "runs"), base_model="x",
        general_eval_set=general,
    )  # fmt: skip


def test_the_packaged_set_loads_from_the_installed_package() -> None:
    manifest = resources.files(PACKAGE) / "manifest.tsv"
    assert manifest.is_file() and Path(str(manifest)) == packaged_manifest()
    general = load_general_set(PACKAGED)
    script = _render_script()

    assert general.source == PACKAGED and len(general.examples) == PACKAGED_CLIPS
    # Every sentence of the script, once per voice, in the order it renders them.
    assert [e.text for e in general.examples] == [*script.SENTENCES, *script.SENTENCES]
    assert general.sentences == len(script.SENTENCES) == PACKAGED_CLIPS // 2
    assert Counter(general.speakers.values()) == dict.fromkeys(VOICES, PACKAGED_CLIPS // 2)
    assert set(script.VOICES) == VOICES
    folder = packaged_manifest().parent
    clips = [e.audio_path for e in general.examples]
    assert all(path.parent == folder and path.suffix == ".ogg" for path in clips)
    assert sum(path.stat().st_size for path in clips) < MAX_PACKAGED_BYTES
    for sentence in script.SENTENCES:
        assert 6 <= len(sentence.split()) <= 15
        # No numbers: a model that learns to write "10" for "dieci" has not forgotten.
        assert not set(normalize_text(sentence).split()) & NUMBER_WORDS, sentence
        assert not any(char.isdigit() for char in sentence), sentence


def test_its_sentences_are_its_own() -> None:
    """None of the sentences the benchmarks or tests speak (they train on those)."""
    ours = {normalize_text(s) for s in _render_script().SENTENCES}
    sources = [REPO / name for name in OTHER_SENTENCE_FILES]
    sources += [p for folder in OTHER_SENTENCE_FOLDERS for p in (REPO / folder).rglob("*.py")]
    theirs = normalize_text(" | ".join(path.read_text(encoding="utf-8") for path in sources))
    assert [s for s in ours if s in theirs] == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, PACKAGED), ("", PACKAGED), ("packaged", PACKAGED), (" Packaged ", PACKAGED),
     ("none", None), ("NONE", None)],
)  # fmt: skip
def test_the_setting_chooses_the_set(value: str | None, expected: str | None) -> None:
    assert general_set_source(value) == expected


def test_an_admins_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert general_set_source("sets/cv-it") == str(tmp_path / "sets" / "cv-it")
    assert general_set_source(tmp_path / "fleurs.tsv") == str(tmp_path / "fleurs.tsv")


def test_default_settings_judge_the_packaged_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WHISPER_IT_EVAL_GENERAL_SET", raising=False)
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    assert settings.eval_general_set == PACKAGED
    control = TrainingControl(settings, database=None)  # type: ignore[arg-type]
    assert control.run_config(1).general_eval_set == PACKAGED  # not a path: read in place

    monkeypatch.setenv("WHISPER_IT_EVAL_GENERAL_SET", OFF)
    off = Settings(data_dir=tmp_path / "data", _env_file=None)
    assert TrainingControl(off, database=None).run_config(1).general_eval_set is None  # type: ignore[arg-type]

    own = Settings(data_dir=tmp_path / "data", eval_general_set=tmp_path / "cv", _env_file=None)
    assert TrainingControl(own, database=None).run_config(1).general_eval_set == str(  # type: ignore[arg-type]
        tmp_path / "cv"
    )


def test_a_run_judges_the_packaged_set_unless_turned_off(tmp_path: Path) -> None:
    packaged = _eval_sets(_config(tmp_path, PACKAGED), tmp_path / "run")
    assert len(packaged[GENERAL_SET]) == PACKAGED_CLIPS
    assert GENERAL_SET not in _eval_sets(_config(tmp_path, None), tmp_path / "run")


def test_sentences_a_run_trains_on_leave_the_packaged_set(tmp_path: Path) -> None:
    """Its sentences are public: a user who corrects clips into them does not teach the
    guard (an admin's own set is theirs to judge as they like)."""
    general = load_general_set(PACKAGED).examples
    taught = general[3].text.upper()  # the normaliser's sentence, not the exact text
    run_dir = tmp_path / "run"
    mine = tmp_path / "mine.wav"
    mine.write_bytes(b"")
    write_manifest(run_dir / TRAIN_MANIFEST, [Example("k", taught, mine)])
    judged = _eval_sets(_config(tmp_path, PACKAGED), run_dir)[GENERAL_SET]
    assert len(judged) == PACKAGED_CLIPS - 2  # the sentence in both voices
    assert normalize_text(taught) not in {normalize_text(e.text) for e in judged}

    own = tmp_path / "own"
    own.mkdir()
    rows = []
    for example in general[3], general[4]:
        shutil.copy2(example.audio_path, own / example.audio_path.name)
        rows.append(f"{example.audio_path.name}\t{example.text}")
    (own / "set.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = _config(tmp_path, general_set_source(own / "set.tsv"))
    assert len(_eval_sets(config, run_dir)[GENERAL_SET]) == 2


def _scored(model: str, examples: list[Example]) -> Evaluation:
    """Scores without a model: every clip heard right."""
    texts = [e.text for e in examples]
    clips = tuple(
        ClipScore(e.audio_path, e.text, e.text, 3.0, len(e.text.split()), 0, 0, len(e.text), 0)
        for e in examples
    )
    return Evaluation(model, "ct2", error_rates(texts, texts), clips, 3.0 * len(clips), 1.0)


def test_a_gate_run_with_default_settings_judges_the_packaged_set(
    tmp_path: Path, database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole judgement but the models: default settings, the run's configuration as the
    trainer reads it, the sets it loads, the gate's decision on them, the report."""
    from training import judging
    from training.report import DataFacts
    from training.runner import _facts
    from training.snapshot import Snapshot

    monkeypatch.delenv("WHISPER_IT_EVAL_GENERAL_SET", raising=False)
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    control = TrainingControl(settings, database=None)  # type: ignore[arg-type]
    config = RunConfig.from_json(control.run_config(1).to_json())
    judged_sets: list[str] = []

    def evaluate(config, ct2_dir, model_name, sets):
        judged_sets.extend(sets)
        return {name: _scored(model_name, examples) for name, examples in sets.items()}

    monkeypatch.setattr(judging, "_evaluate", evaluate)
    monkeypatch.setattr(judging, "_ct2_of", lambda config, registry, name: tmp_path / name)
    decision, _, sets = judging.judge(
        config, database, ModelRegistry(tmp_path / "models"), "base", "v1", tmp_path / "v1"
    )

    check = decision.check(GENERAL_SET)
    assert check is not None and check.clips == PACKAGED_CLIPS
    assert check.clusters == PACKAGED_CLIPS // 2  # a sentence in both voices is one
    # No corrections held out: the packaged set is the primary set, and no gain, no model.
    assert decision.primary_set == GENERAL_SET and not decision.promote
    assert judged_sets == [GENERAL_SET, GENERAL_SET]  # serving model and candidate
    snapshot = Snapshot("base", "", 0, None, 0, 0, 0, 0)
    facts = _facts(snapshot, sets, general_set=config.general_eval_set)
    assert facts == DataFacts(0, 0, 0, general_clips=PACKAGED_CLIPS, general_set=PACKAGED)


def test_doctor_names_the_general_set_in_use(tmp_path: Path) -> None:
    from bot.commands.doctor import check_general_set

    packaged = check_general_set(Settings(data_dir=tmp_path, _env_file=None))
    assert packaged.status == "ok" and packaged.details["source"] == PACKAGED
    assert packaged.summary == "incluso nel pacchetto: 160 clip, 80 frasi, 2 voci"

    off = check_general_set(Settings(data_dir=tmp_path, eval_general_set=OFF, _env_file=None))
    assert off.status == "warn" and off.summary.startswith("disattivato")

    clip = load_general_set(PACKAGED).examples[0]
    shutil.copy2(clip.audio_path, tmp_path / "a.ogg")
    (tmp_path / "own.tsv").write_text(f"a.ogg\t{clip.text}\n", encoding="utf-8")
    own = Settings(data_dir=tmp_path, eval_general_set=tmp_path / "own.tsv", _env_file=None)
    assert check_general_set(own).summary == f"{tmp_path / 'own.tsv'}: 1 clip, 1 frase"
