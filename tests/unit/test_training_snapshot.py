"""A run's data snapshot: the recent uncorrected guard set, the manifests, and privacy
(forgotten audio leaves open runs' manifests; finished runs keep no texts)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from model.asr.normalize import normalize_text
from storage import repository
from storage.audio_store import AudioStore
from storage.models import SOURCE_VOICE, Transcription
from storage.samples import add_labelled_sample
from storage.unit_of_work import Database
from training.config import RunConfig
from training.data import Example
from training.snapshot import (
    HELDOUT_MANIFEST,
    RECENT_MANIFEST,
    TRAIN_MANIFEST,
    delete_text_manifests,
    read_run_manifest,
    recent_uncorrected,
    scrub_run_manifests,
    take_snapshot,
    write_manifest,
)

SENTENCES = [f"Questa è la frase numero {word}." for word in
             ("uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci",
              "undici", "dodici")]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path):
    database = Database.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store = AudioStore(tmp_path / "audio")
    rng = np.random.default_rng(0)

    def audio(seconds: float = 2.0):
        return store.put((0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32))

    yield database, store, audio
    database.close()


def _uncorrected(session, ref, text: str) -> int:
    row = repository.add_transcription(session, source_kind=SOURCE_VOICE, text=text, audio=ref)
    return row.id


def test_recent_uncorrected_is_short_stored_audio_nobody_corrected(world) -> None:
    database, _store, audio = world
    with database.unit_of_work() as uow:
        user = repository.touch_user(uow.session, 5, name="u")
        kept = [audio(), audio()]
        for ref in kept:
            _uncorrected(uow.session, ref, "ciao a tutti")
        corrected = _uncorrected(uow.session, audio(), "sbagliato")
        repository.add_correction(
            uow.session, transcription_id=corrected, user_id=user.id, text="giusto"
        )
        _uncorrected(uow.session, audio(45.0), "troppo lungo per il controllo")
        _uncorrected(uow.session, audio(), "   ...  ")  # nothing a WER could count
        add_labelled_sample(uow.session, audio=audio(), text="importato")
        excluded = audio()
        _uncorrected(uow.session, excluded, "già un campione")
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        found = recent_uncorrected(uow.session, limit=10, exclude={excluded.sha256})
        assert sorted(sha for sha, _ in found) == sorted(ref.sha256 for ref in kept)
        eligible = {kept[0].sha256, kept[1].sha256, excluded.sha256}
        (one,) = recent_uncorrected(uow.session, limit=1, exclude=())
        assert one[0] in eligible
        assert recent_uncorrected(uow.session, limit=0) == []


def test_recent_is_a_random_sample_capped_per_user(world) -> None:
    """One busy user cannot fill the forgetting guard (issue 19)."""
    database, _store, audio = world
    with database.unit_of_work() as uow:
        for user_id, count in ((1, 30), (2, 3), (3, 3)):
            repository.touch_user(uow.session, user_id)
            for _ in range(count):
                ref = audio()
                repository.add_transcription(
                    uow.session, source_kind=SOURCE_VOICE, text="ciao", audio=ref, user_id=user_id
                )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        picks = [
            recent_uncorrected(uow.session, limit=8, max_user_share=0.5, seed=seed)
            for seed in (1, 2)
        ]
        owners = dict(
            uow.session.execute(select(Transcription.audio_sha256, Transcription.user_id)).all()
        )
    for pick in picks:
        users = [owners[sha] for sha, _ in pick]
        assert len(pick) == 8 and users.count(1) == 4  # capped at half, the rest the others
    assert picks[0] != picks[1]  # a sample, not simply the newest


def test_snapshot_manifests_and_privacy(world, tmp_path: Path) -> None:
    database, store, audio = world
    refs = []
    with database.unit_of_work() as uow:
        for sentence in SENTENCES:
            ref = audio()
            add_labelled_sample(uow.session, audio=ref, text=sentence)
            refs.append(ref)
        _uncorrected(uow.session, audio(), "un messaggio che nessuno ha corretto")
        uow.commit()
    config = RunConfig(
        run_id=1, database_url="", audio_dir=str(tmp_path / "audio"), models_dir="",
        cache_dir="", runs_dir=str(tmp_path / "runs"), base_model="x", eval_fraction=0.3,
    )  # fmt: skip
    snapshot = take_snapshot(config, database, start_model="base", start_hf_dir=tmp_path)
    run_dir = config.run_dir
    train = read_run_manifest(run_dir / TRAIN_MANIFEST)
    heldout = read_run_manifest(run_dir / HELDOUT_MANIFEST)
    assert snapshot.train_clips == len(train) and snapshot.heldout_clips == len(heldout)
    assert len(train) + len(heldout) == len(SENTENCES) and heldout and train
    assert not {e.text for e in train} & {e.text for e in heldout}
    assert snapshot.heldout_shared_sentences == 0  # the split is by sentence already
    assert [e.text for e in read_run_manifest(run_dir / RECENT_MANIFEST)] == [
        "un messaggio che nessuno ha corretto"
    ]
    # Resuming reuses the snapshot, even after the data changed.
    assert take_snapshot(config, database, start_model="v9", start_hf_dir=tmp_path) == snapshot

    # /forget: the user's audio leaves the open run's manifests and the text caches go.
    cache_index = run_dir / "train" / "encoder_cache.json"
    cache_index.parent.mkdir()
    cache_index.write_text("{}")
    forgotten = {e.audio_path.stem for e in train[:2]}
    assert scrub_run_manifests(tmp_path / "runs", forgotten) == 2
    left = read_run_manifest(run_dir / TRAIN_MANIFEST)
    assert len(left) == len(train) - 2 and not forgotten & {e.audio_path.stem for e in left}
    assert not cache_index.exists()
    assert scrub_run_manifests(tmp_path / "runs", forgotten) == 0

    # Audio deleted from the store since the snapshot drops out when the run reads it.
    store.path(refs[SENTENCES.index(left[0].text)].sha256).unlink()
    assert len(read_run_manifest(run_dir / TRAIN_MANIFEST)) == len(left) - 1

    # A finished run keeps no correction text at all.
    delete_text_manifests(run_dir)
    assert not list(run_dir.rglob("*.tsv"))
    texts = " ".join(p.read_text() for p in run_dir.rglob("*") if p.is_file())
    assert not any(sentence in texts for sentence in SENTENCES)


def test_uncorrected_audio_is_split_between_guard_and_replay_never_shared() -> None:
    from training.snapshot import split_uncorrected

    pool = [(f"{n:064x}", f"testo {n}") for n in range(10)]  # newest first
    guard, replay = split_uncorrected(pool, guard=3, replay=32)
    assert [t for _, t in guard] == ["testo 0", "testo 2", "testo 4"]
    assert len(replay) == 5 and not set(guard) & set(replay)
    assert split_uncorrected(pool, guard=0, replay=4) == ([], pool[:4])
    assert split_uncorrected(pool, guard=4, replay=0) == (pool[:4], [])


def test_sentences_replay_brings_in_are_not_judged_as_unseen(world, tmp_path: Path) -> None:
    """Replayed uncorrected audio whose accepted transcript is a held-out sentence trains
    the candidate on it: that sentence leaves the held-out set (issue 19)."""
    database, _store, audio = world
    with database.unit_of_work() as uow:
        for sentence in SENTENCES:
            add_labelled_sample(uow.session, audio=audio(), text=sentence)
            _uncorrected(uow.session, audio(), sentence.upper())  # the same, once normalised
        uow.commit()
    config = RunConfig(
        run_id=2, database_url="", audio_dir=str(tmp_path / "audio"), models_dir="",
        cache_dir="", runs_dir=str(tmp_path / "runs"), base_model="x", eval_fraction=0.3,
        recent_eval_clips=0, replay_uncorrected=len(SENTENCES),
    )  # fmt: skip
    snapshot = take_snapshot(config, database, start_model="base", start_hf_dir=tmp_path)
    train = read_run_manifest(config.run_dir / TRAIN_MANIFEST)
    heldout = read_run_manifest(config.run_dir / HELDOUT_MANIFEST)
    trained = {normalize_text(e.text) for e in train}
    assert snapshot.replayed_uncorrected > 0 and snapshot.heldout_shared_sentences > 0
    assert heldout and not trained & {normalize_text(e.text) for e in heldout}


def test_a_forget_rewriting_a_manifest_the_trainer_rewrites_breaks_neither(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The trainer drops purged audio from its manifest while a /forget (a bot thread)
    scrubs the same file. With one fixed temporary name (``train.tmp``) the second
    rename took the first one's file (FileNotFoundError); with no lock the trainer wrote
    back the rows the /forget had just removed."""
    audio = {name: tmp_path / "audio" / f"{name * 64}.flac" for name in "abc"}
    for path in audio.values():
        path.parent.mkdir(exist_ok=True)
        path.touch()
    run_dir = tmp_path / "runs" / "run-0001"
    examples = [Example(key=n, text=f"frase {n}", audio_path=p) for n, p in audio.items()]
    write_manifest(run_dir / TRAIN_MANIFEST, examples)
    audio["a"].unlink()  # purged since the snapshot: the trainer's read rewrites the file
    scrubbed: list[int] = []
    forget = threading.Thread(
        target=lambda: scrubbed.append(scrub_run_manifests(tmp_path / "runs", {"b" * 64}))
    )
    real_replace = os.replace

    def replace_while_a_forget_runs(src: Any, dst: Any) -> None:
        if forget.ident is None:
            forget.start()
            forget.join(timeout=0.5)  # it runs to its end, unless it waits for the trainer
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_while_a_forget_runs)
    # What the trainer loaded depends on who went first; the file, on nobody.
    assert "frase a" not in {e.text for e in read_run_manifest(run_dir / TRAIN_MANIFEST)}
    forget.join()
    assert scrubbed == [1]
    assert [e.text for e in read_run_manifest(run_dir / TRAIN_MANIFEST)] == ["frase c"]
    assert not list(run_dir.glob("*.tmp"))


def test_a_finished_run_keeps_no_temporary_copy_of_a_manifest(tmp_path: Path) -> None:
    """A process killed between writing a manifest's temporary copy and renaming it
    leaves texts under another name: they go with the manifests."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in (TRAIN_MANIFEST, f".{TRAIN_MANIFEST}.x7q2.tmp", f".{RECENT_MANIFEST}.z9.tmp"):
        (run_dir / name).write_text("/audio/x.flac\tuna frase\n")
    delete_text_manifests(run_dir)
    assert list(run_dir.iterdir()) == []
