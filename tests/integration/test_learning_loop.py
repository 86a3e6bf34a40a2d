"""The learning loop across runs: the step budget grows with the data, the persistent
encoder cache computes only new clips, and /forget reaches the cache, open runs and every
model version trained on the forgotten audio (which /rollback then refuses)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from model.asr.registry import BASE_VERSION, ModelRegistry, RegistryError
from training.arguments import FinetuneArguments
from training.encoder_cache import EncoderCache, clip_id, forget_clips, prune, variants
from training.finetune import planned_steps
from training.forgetting import (
    REFUSED_CT2,
    forget_training_audio,
    record_trained_on,
    run_forgotten,
    trained_on,
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def install_fake_version(
    registry: ModelRegistry, tmp: Path, name: str, *, parent: str, trained_on: set[str]
) -> None:
    """A version folder with placeholder weights (nothing here loads a model)."""
    hf, ct2 = tmp / f"{name}-hf", tmp / f"{name}-ct2"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "whisper"}))
    (hf / "model.safetensors").write_bytes(b"weights")
    ct2.mkdir()
    spec = b"WhisperSpec\0"
    header = struct.pack("<I", 6) + struct.pack("<H", len(spec)) + spec + struct.pack("<I", 1)
    (ct2 / "model.bin").write_bytes(header)
    (ct2 / "config.json").write_text("{}")
    registry.install(
        name, hf_dir=hf, ct2_dir=ct2, metrics={"parent": parent, "created_at": name},
        card=f"# {name}\n", move=True, trained_on=trained_on,
    )  # fmt: skip


def test_the_step_budget_grows_with_the_data() -> None:
    args = FinetuneArguments(batch_size=8, max_epochs=3.0)  # the defaults: no step cap
    assert args.max_steps == 0
    budgets = [planned_steps(args, clips) for clips in (45, 120, 1000, 5000)]
    assert budgets == [17, 45, 375, 1875]  # 3 passes over every clip, however many
    with pytest.raises(Exception, match="no step budget"):
        planned_steps(FinetuneArguments(max_epochs=0, max_steps=0), 10)


def test_cache_keys_are_content_addresses(tmp_path: Path) -> None:
    stored = tmp_path / f"{_sha('a')}.flac"
    stored.write_bytes(b"not read: the store's name is its hash")
    other = tmp_path / "clip.wav"
    other.write_bytes(b"RIFF....")
    assert clip_id(stored) == _sha("a")
    assert clip_id(other) == hashlib.sha256(b"RIFF....").hexdigest()
    # A perturbation is fixed by (clip, copy, seed): the same key is always the same audio.
    first, again = variants("c1", copies=2, seed=0), variants("c1", copies=2, seed=0)
    assert first == again and first[0].perturbation is None and len(first) == 3
    assert first[1].perturbation != first[2].perturbation
    assert variants("c2", copies=1, seed=0)[1].perturbation != first[1].perturbation
    assert variants("c1", copies=1, seed=1)[1].name != first[1].name


def test_forget_and_prune_delete_cache_entries(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    kept, gone = _sha("kept"), _sha("gone")
    current, old = EncoderCache(root, "model-a"), EncoderCache(root, "model-b")
    for cache in (current, old):
        for clip in (kept, gone):
            cache.put(clip, "clean", np.ones((4, 2), dtype=np.float32))
    assert np.asarray(current.load(kept, "clean")).dtype == np.float16
    assert forget_clips(root, [gone.upper(), "not-a-hash"]) == 2  # under both model keys
    assert not current.has(gone, "clean") and not old.has(gone, "clean")
    assert current.has(kept, "clean") and old.has(kept, "clean")
    current.put(_sha("purged"), "clean", np.zeros((4, 2), dtype=np.float32))
    assert prune(root, key="model-a", keep={kept}) == 2  # the purged clip, the old model
    assert current.has(kept, "clean") and not (root / "model-b").exists()


def test_forget_marks_versions_and_runs_trained_on_the_audio(tmp_path: Path) -> None:
    runs, models, cache_root = tmp_path / "runs", tmp_path / "models", tmp_path / "cache"
    alice, bob = _sha("alice"), _sha("bob")
    registry = ModelRegistry(models)
    install_fake_version(registry, tmp_path, "v1", parent=BASE_VERSION, trained_on={alice, bob})
    install_fake_version(registry, tmp_path, "v2", parent="v1", trained_on={bob})
    registry.set_current("v2")
    open_run = runs / "run-0003"
    open_run.mkdir(parents=True)
    record_trained_on(open_run, [Path(f"/store/{alice}.flac"), Path("/corpus/x.wav")])
    assert trained_on(open_run) == {alice}
    EncoderCache(cache_root, "k").put(alice, "clean", np.zeros((2, 2), dtype=np.float32))

    report = forget_training_audio(
        [alice], runs_dir=runs, models_dir=models, encoder_cache_dir=cache_root,
        in_progress="run-0003",
    )  # fmt: skip
    assert report.versions_marked == ("v1",) and report.runs_marked == ("run-0003",)
    assert report.cache_clips == 1 and not EncoderCache(cache_root, "k").has(alice, "clean")
    assert run_forgotten(open_run) and trained_on(open_run) == set()
    v1 = registry.get("v1")
    assert v1.forgotten and v1.trained_on() == {bob}  # the forgotten hash left the list
    assert not v1.hf_dir.exists() and not v1.ct2_dir.exists()  # and its weights are gone
    assert not registry.get("v2").forgotten and registry.get("v2").ct2_dir.is_dir()
    # The version serving keeps serving; /rollback will not go back to v1.
    assert registry.current_name() == "v2"
    with pytest.raises(RegistryError, match="/forget"):
        registry.rollback()
    assert registry.current_name() == "v2"
    with pytest.raises(RegistryError, match="non la userò più"):
        registry.set_current("v1")
    # Forgotten while serving: it serves on until replaced, then its weights go too.
    forget_training_audio(
        [bob], runs_dir=runs, models_dir=models, encoder_cache_dir=cache_root, in_progress=None
    )
    assert registry.get("v2").forgotten and registry.get("v2").ct2_dir.is_dir()
    registry.set_current(BASE_VERSION)  # the base model never saw anyone's data
    assert registry.prune() == ["v2"] and not registry.get("v2").ct2_dir.exists()
    assert json.loads((v1.path / "metrics.json").read_text())["parent"] == BASE_VERSION


@pytest.mark.parametrize("keep", [False, True])
def test_a_refused_candidate_is_kept_only_when_asked_and_forget_deletes_it(
    tmp_path: Path, keep: bool
) -> None:
    from training.run_folder import CANDIDATE_CT2, clean_up

    runs, alice, bob = tmp_path / "runs", _sha("alice"), _sha("bob")
    places = {"runs_dir": runs, "models_dir": tmp_path / "m", "encoder_cache_dir": tmp_path / "c"}

    def refused_run(name: str, audio: str) -> Path:
        run_dir = runs / name
        (run_dir / CANDIDATE_CT2).mkdir(parents=True)
        (run_dir / CANDIDATE_CT2 / "model.bin").write_bytes(b"weights")
        record_trained_on(run_dir, [Path(f"/store/{audio}.flac")])
        return run_dir

    finished, forgotten_meanwhile = refused_run("run-0001", bob), refused_run("run-0002", alice)
    forget_training_audio([alice], **places, in_progress="run-0002")  # while it runs
    assert (forgotten_meanwhile / CANDIDATE_CT2).is_dir()  # its trainer may still judge it
    for run_dir in (finished, forgotten_meanwhile):
        clean_up(run_dir, promoted=False, keep_refused=keep)
        assert not (run_dir / CANDIDATE_CT2).exists()
    # A run that trained on audio forgotten while it ran keeps nothing, asked or not.
    assert not (forgotten_meanwhile / REFUSED_CT2).exists()
    assert trained_on(forgotten_meanwhile) == set()
    kept = finished / REFUSED_CT2
    assert (kept / "model.bin").is_file() is keep
    # Kept, it keeps the list of its audio, which is how /forget finds and deletes it.
    assert trained_on(finished) == ({bob} if keep else set())
    report = forget_training_audio([bob], **places, in_progress=None)
    assert report.runs_marked == (("run-0001",) if keep else ())
    assert not kept.exists()


def test_runs_start_from_the_base_model(tmp_path: Path, model_cache: Path) -> None:
    from model.asr.sources import hf_dir
    from training.config import START_FROM_SERVING, RunConfig
    from training.runner import _start_model

    registry = ModelRegistry(tmp_path / "models")
    install_fake_version(registry, tmp_path, "v1", parent=BASE_VERSION, trained_on=set())
    registry.set_current("v1")
    config = RunConfig(
        run_id=2, database_url="sqlite://", audio_dir="a", models_dir=str(registry.root),
        cache_dir=str(model_cache), runs_dir="r", base_model="packaged:whisper-base",
    )  # fmt: skip
    base_hf = hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    assert _start_model(config, registry) == (BASE_VERSION, base_hf)
    chained = RunConfig(**{**config.__dict__, "start_from": START_FROM_SERVING})
    assert _start_model(chained, registry) == ("v1", registry.get("v1").hf_dir)


def test_a_later_run_caches_only_new_clips(
    model_cache: Path, speech_dir: Path, tmp_path: Path
) -> None:
    import torch

    from model.asr.sources import hf_dir
    from tests.support.speech import synthesize
    from training._datasets import cached_dataset
    from training._whisper_model import PartialEncoderWhisper
    from training.data import Example, LabelEncoder
    from training.encoder_cache import model_key

    model_dir = hf_dir("packaged:whisper-base", cache_dir=model_cache).path
    model = PartialEncoderWhisper.from_pretrained(str(model_dir), dtype=torch.float32)
    model.configure_trainable(encoder_layers=4, train_embeddings=False)
    labels = LabelEncoder(model_dir, language="it")
    texts = ("Il treno parte alle otto.", "Domani piove a Roma.")
    examples = [
        Example(str(i), text, synthesize(text, speech_dir / f"loop-{i}.wav"))
        for i, text in enumerate(texts)
    ]
    cache = EncoderCache(tmp_path / "cache", model_key(model_dir, model.cached_layers))
    _, first = cached_dataset(model, examples[:1], labels, cache=cache, augment_copies=1, seed=0)
    dataset, second = cached_dataset(model, examples, labels, cache=cache, augment_copies=1, seed=0)
    assert (first.reused, first.computed) == (0, 2)  # the clip and its perturbed copy
    assert (second.reused, second.computed) == (2, 2)  # only the new clip's two entries
    assert len(dataset) == 4
    # Another number of frozen layers is another key: nothing is reused across them.
    assert model.cached_layers == 2 and model_key(model_dir, 3) != cache.key


def test_the_bots_forget_path_reaches_training(tmp_path: Path) -> None:
    from bot.settings import Settings
    from bot.training_control import TrainingControl
    from storage.unit_of_work import Database

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    control = TrainingControl(settings, database)
    user = _sha("user audio")
    install_fake_version(control.registry, tmp_path, "v1", parent=BASE_VERSION, trained_on={user})
    cache = EncoderCache(control.encoder_cache_dir, "key")
    cache.put(user, "clean", np.zeros((2, 2), dtype=np.float32))
    assert control.run_config(1).encoder_cache_dir == str(control.encoder_cache_dir.resolve())

    try:
        report = control.forget_audio([user])
    finally:
        database.close()
    assert report.versions_marked == ("v1",) and report.cache_clips == 1
    assert control.registry.get("v1").forgotten and not cache.has(user, "clean")
