"""Training runs for real: espeak samples, the training subprocess, CT2 export, the gate.

Short runs (a few steps of batch 2) on a handful of clips; the numbers mean nothing, the
mechanics are what is tested: the CLI end to end with promotion and rollback, and the
serving-engine gate refusing a broken candidate (resume after a kill: test_training_resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.training_texts import ROLLBACK_NOTHING
from model.asr.registry import BASE_VERSION, ModelRegistry
from storage import training_records
from storage.unit_of_work import Database
from tests.support.training_support import (
    FAST_TRAINING,
    SENTENCES,
    VOICES,
    data_dir_with_cache,
    labelled_tsv,
    run_cli,
)
from training.finetune import CHECKPOINTS_DIR
from training.snapshot import TRAIN_MANIFEST

__all__ = ["labelled_tsv"]  # a fixture, imported for pytest

pytestmark = pytest.mark.slow


def test_train_cli_promotes_and_rolls_back(
    tmp_path: Path, model_cache: Path, labelled_tsv: Path
) -> None:
    data = data_dir_with_cache(tmp_path, model_cache)
    # Any candidate that is not worse by 100 points passes: this test is about the
    # promotion path (the gate's judgement is tested below with a broken model).
    gate: dict[str, object] = {
        "gate_min_wer_improvement": -1.0,
        "gate_general_tolerance": 1.0,
        "gate_max_insertion_rate": 100.0,
        # Five general sentences: the exact sign-flip test reaches p = 1/32 at best.
        "gate_confidence": 0.9,
        # No held-out sentences (which ones the installation's random salt holds out would
        # vary from run to run, and the evaluation time with them): the gate judges on a
        # general set, one clip of each of the five sentences (a clip costs a window).
        "eval_fraction": 0.0,
        "eval_general_set": one_clip_each(labelled_tsv),
    }
    # The L2-SP pull toward the start weights runs here too (its effect: the benchmark).
    gate["train_anchor_strength"] = 0.1
    imported = run_cli(["samples", "import", str(labelled_tsv)], data)
    assert imported.returncode == 0, imported.stderr
    # What a run killed between its "done" record and its clean-up leaves behind.
    leftover = data / "runs" / "run-0099"
    (leftover / "train" / CHECKPOINTS_DIR / "checkpoint-4").mkdir(parents=True)
    (leftover / TRAIN_MANIFEST).write_text("audio\ttext\n0.wav\tcorrection text\n")
    trained = run_cli(["train", "--max-steps", "2", "--wait"], data, **{**FAST_TRAINING, **gate})
    assert trained.returncode == 0, trained.stderr[-3000:]
    verdict = json.loads(trained.stdout[trained.stdout.index("{") :])
    assert verdict["promoted"] is True and verdict["candidate"] == "v1"
    assert verdict["steps"] == 2
    # The run swept that up: a closed run is never resumed.
    assert not (leftover / "train" / CHECKPOINTS_DIR).exists()
    assert not (leftover / TRAIN_MANIFEST).exists()
    # The report names the general set it judged: the admin's, not the packaged one.
    assert verdict["data"]["general_set"] == str(one_clip_each(labelled_tsv).resolve())

    registry = ModelRegistry(data / "models")
    current = registry.current()
    assert current is not None and current.name == "v1"
    assert (current.path / "README.md").read_text().startswith("---")
    assert current.metrics["parent"] == BASE_VERSION and current.metrics["promoted"]
    from bot.bootstrap import current_model_spec

    settings = Settings(data_dir=data, _env_file=None)
    assert Path(current_model_spec(settings)) == current.ct2_dir

    # The promoted model serves through the engine the bot uses.
    from model.asr.engines import CT2Transcriber
    from training.data import load_audio

    engine = CT2Transcriber(current.ct2_dir, cpu_threads=2)
    text = engine.transcribe(load_audio(labelled_tsv.parent / "0-itm1.wav")).text
    assert "treno" in text.lower()  # 2 steps of batch 2 teach little; it still hears speech

    database = Database.open(f"sqlite:///{data / 'whisper-it.sqlite3'}")
    try:
        with database.unit_of_work(read_only=True) as uow:
            history = training_records.wer_history(uow.session)
            run = training_records.latest_training_run(uow.session)
        assert {p.model_version for p in history} == {BASE_VERSION, "v1"}
        assert run is not None and run.status == "done" and run.steps_done == 2
        # A finished run keeps no correction text in its folder (privacy).
        run_dir = data / "runs" / f"run-{run.id:04d}"
        assert (run_dir / "snapshot.json").is_file() and not list(run_dir.rglob("*.tsv"))
    finally:
        database.close()

    listed = run_cli(["models", "--json"], data)
    assert listed.returncode == 0, listed.stderr
    assert {m["name"]: m["current"] for m in json.loads(listed.stdout)}["v1"] is True

    rolled = run_cli(["rollback"], data)
    assert rolled.returncode == 0 and "now serving base" in rolled.stdout
    assert registry.current() is None
    assert current_model_spec(settings) == settings.base_model
    again = run_cli(["rollback"], data)
    assert again.returncode == 1 and ROLLBACK_NOTHING in again.stderr


def test_gate_refuses_a_broken_candidate_with_the_serving_engine(
    tmp_path: Path, model_cache: Path, labelled_tsv: Path
) -> None:
    import torch
    from transformers import WhisperForConditionalGeneration

    from model.asr import convert, sources
    from training.data import read_manifest
    from training.evaluate import evaluate_ct2
    from training.gate import decide
    from training.gate_policy import GatePolicy
    from training.promote import model_card, promote_version

    base_hf = sources.hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    base_ct2 = sources.ct2_dir("packaged:whisper-base", cache_dir=model_cache).path
    broken_hf = tmp_path / "broken-hf"
    model = WhisperForConditionalGeneration.from_pretrained(base_hf)
    torch.manual_seed(0)
    with torch.no_grad():  # an "untrained" encoder: its top layers are noise
        for layer in model.model.encoder.layers[-2:]:
            for parameter in layer.parameters():
                parameter.normal_(0.0, 0.2)
    model.save_pretrained(broken_hf)
    for item in base_hf.iterdir():
        if item.name not in ("config.json", "generation_config.json", "model.safetensors"):
            (broken_hf / item.name).write_bytes(item.read_bytes())
    broken_ct2 = convert.export_hf_to_ct2(broken_hf, tmp_path / "broken-ct2")

    # One clip of each sentence: five sentences are what the test needs, and each clip
    # costs both models a 30 s window of encoding.
    examples = read_manifest(one_clip_each(labelled_tsv))
    scores = {
        name: {"heldout": evaluate_ct2(ct2, examples, model_name=name, cpu_threads=2)}
        for name, ct2 in (("base", base_ct2), ("broken", broken_ct2))
    }
    # One speaker (the TSV names none) and five sentences: the mechanics, judged at 80%
    # (p = 2/32 if the base model got one sentence as wrong as the broken one).
    policy = GatePolicy(min_eval_sentences=len(examples), min_eval_users=1, confidence=0.8)
    refused = decide(scores["base"], scores["broken"], policy)
    assert not refused.promote and refused.primary_set == "heldout", refused.reasons
    check = refused.check("heldout")
    assert check is not None and check.verdict == "worse" and check.clips == len(examples)
    assert check.interval.low > 0 and check.sentences == len(examples) == len(SENTENCES)
    assert scores["broken"]["heldout"].rates.wer > scores["base"]["heldout"].rates.wer

    # The other way round the gate promotes, and promotion is atomic and recorded.
    accepted = decide(scores["broken"], scores["base"], policy)
    assert accepted.promote, accepted.reasons
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        with database.unit_of_work() as uow:
            row = training_records.add_model_version(uow.session, name="v7")
            uow.commit()
        registry = ModelRegistry(settings.models_dir)
        promote_version(
            registry,
            database,
            name="v7",
            hf_dir=base_hf,
            ct2_dir=base_ct2,
            metrics={"parent": BASE_VERSION},
            card=model_card(name="v7", parent=BASE_VERSION, base_model="packaged:whisper-base",
                            decision=accepted, training={}, created_at=row.created_at),
            model_version_id=row.id,
            move=False,  # the base model's folders belong to the shared cache
        )  # fmt: skip
        assert registry.current_name() == "v7"
        with database.unit_of_work(read_only=True) as uow:
            active = training_records.active_model_version(uow.session)
            assert active is not None and active.name == "v7"
            assert active.ct2_dir == str(registry.get("v7").ct2_dir)
    finally:
        database.close()


# The voice of each sentence's clip in one_clip_each: one that whisper-base reads without
# temperature fallback, which costs an evaluation ~7 s a clip here (5 samplings).
QUICK_VOICES = ("it+m1", "it+m1", "it+m1", "it+f2", "it+m1")


def one_clip_each(tsv: Path) -> Path:
    """One clip of each sentence of ``tsv`` (QUICK_VOICES), as a TSV beside it."""
    lines = tsv.read_text(encoding="utf-8").splitlines()
    picked = [lines[s * len(VOICES) + VOICES.index(v)] for s, v in enumerate(QUICK_VOICES)]
    out = tsv.with_name("one-clip-each.tsv")
    out.write_text("".join(f"{line}\n" for line in picked), encoding="utf-8")
    return out
