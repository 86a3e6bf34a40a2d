"""Training samples (keyed, grouped, stable split; the owner's latest correction) and
privacy (purge, forget). The labelling policy's hostile cases: test_storage_labels.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from model.asr.normalize import normalize_text
from storage import queue_counts, repository, training_records
from storage.audio_store import AudioRef, AudioStore
from storage.installation import split_salt
from storage.models import PATH_CHARS, RunStatus, Transcription
from storage.privacy import delete_user_data, purge_uncorrected_audio
from storage.samples import (
    EVAL,
    TRAIN,
    add_labelled_sample,
    count_new_samples,
    list_samples,
    sample_stats,
    split_of,
    uncorrected_share,
)
from storage.unit_of_work import Database
from tests.support.labelling import SPLIT
from training.config import split_policy

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLIP_SAMPLES = 1_600  # 0.1 s


def _clip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, CLIP_SAMPLES).astype(np.float32)


def _transcribe(
    database: Database,
    audio: AudioRef,
    *,
    user_id: int,
    correction: str | None = None,
    created: datetime = T0,
) -> int:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, user_id)
        transcription = repository.add_transcription(
            uow.session,
            source_kind="voice",
            text="testo",
            user_id=user_id,
            audio=audio,
            now=created,
        )
        if correction is not None:
            repository.add_correction(
                uow.session, transcription_id=transcription.id, user_id=user_id, text=correction
            )
        uow.commit()
        return transcription.id


SALT = bytes(range(32))
OTHER_SALT = bytes(range(1, 33))


def test_split_is_a_stable_keyed_function_of_the_sentence() -> None:
    sentences = [f"frase numero {i}" for i in range(2000)]
    splits = [split_of(text, salt=SALT, policy=SPLIT) for text in sentences]
    assert splits == [split_of(text, salt=SALT, policy=SPLIT) for text in sentences]
    assert 0.07 < splits.count(EVAL) / len(sentences) < 0.13
    # Case, punctuation and spacing do not make another sentence.
    assert all(
        split_of(f"  Frase, NUMERO {i}!", salt=SALT, policy=SPLIT) == splits[i]
        for i in range(0, 2000, 7)
    )
    # Another installation's salt gives another split: the hash alone predicts nothing.
    other = [split_of(text, salt=OTHER_SALT, policy=SPLIT) for text in sentences]
    # Independent sides: about 2 * 0.1 * 0.9 of the sentences differ.
    assert 250 < sum(a != b for a, b in zip(splits, other, strict=True)) < 470
    assert split_of("x", salt=SALT, policy=split_policy(0.0)) == TRAIN
    assert split_of("x", salt=SALT, policy=split_policy(1.0)) == EVAL
    with pytest.raises(ValueError):
        split_of("x", salt=SALT, policy=split_policy(1.5))
    with pytest.raises(ValueError):
        split_of("x", salt=b"", policy=SPLIT)


def test_every_installation_makes_its_own_salt_once(tmp_path: Path) -> None:
    salts = []
    for name in ("a", "b"):
        url = f"sqlite:///{tmp_path / name / 'db.sqlite3'}"
        for _reopen in range(2):
            database = Database.open(url)
            with database.unit_of_work(read_only=True) as uow:
                salts.append(split_salt(uow.session))
            database.close()
    assert salts[0] == salts[1] and salts[2] == salts[3]  # kept, never remade
    assert salts[0] != salts[2] and len(salts[0]) == 32


def test_same_sentence_is_never_on_both_sides(database: Database, store: AudioStore) -> None:
    """Ten voices saying twenty sentences: each sentence lies wholly on one side."""
    with database.unit_of_work() as uow:
        for voice in range(10):
            for sentence in range(20):
                ref = store.put(_clip(1000 + voice * 100 + sentence))
                text = f"La frase {sentence} detta bene" + ("." if voice % 2 else "!")
                add_labelled_sample(uow.session, audio=ref, text=text)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=split_policy(0.3))
    sides: dict[str, set[str]] = {}
    for sample in samples:
        assert sample.group == normalize_text(sample.text)
        sides.setdefault(sample.group, set()).add(sample.split)
    assert len(samples) == 200 and len(sides) == 20
    assert all(len(side) == 1 for side in sides.values())
    assert {next(iter(side)) for side in sides.values()} == {TRAIN, EVAL}


def test_adding_samples_never_moves_old_ones(database: Database, store: AudioStore) -> None:
    def add(seeds: range) -> None:
        with database.unit_of_work() as uow:
            for seed in seeds:
                ref = store.put(_clip(seed))
                assert add_labelled_sample(uow.session, audio=ref, text=f"frase {seed}") == "added"
            uow.commit()

    add(range(200))
    with database.unit_of_work(read_only=True) as uow:
        before = {s.audio_sha256: s.split for s in list_samples(uow.session, policy=SPLIT)}
    add(range(200, 400))
    with database.unit_of_work(read_only=True) as uow:
        after = {s.audio_sha256: s.split for s in list_samples(uow.session, policy=SPLIT)}
        held_out = list_samples(uow.session, EVAL, policy=SPLIT)
        train = list_samples(uow.session, TRAIN, policy=SPLIT)
    assert len(before) == 200 and len(after) == 400
    assert {sha: after[sha] for sha in before} == before
    assert len(held_out) + len(train) == 400
    assert 20 <= len(held_out) <= 65  # about 10%
    assert all(sample.split == EVAL for sample in held_out)


def test_latest_correction_wins_and_same_audio_is_one_sample(
    database: Database, store: AudioStore
) -> None:
    ref = store.put(_clip(1))
    first = _transcribe(database, ref, user_id=1, correction="ciao a tutti")
    _transcribe(database, store.put(_clip(2)), user_id=1)  # never corrected: not a sample
    with database.unit_of_work() as uow:
        repository.add_correction(
            uow.session, transcription_id=first, user_id=1, text="Ciao a tutti!"
        )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=SPLIT)
    assert [(s.audio_sha256, s.text) for s in samples] == [(ref.sha256, "Ciao a tutti!")]
    assert samples[0].duration == pytest.approx(0.1)
    # The same recording sent again by someone else, corrected the same way up to
    # punctuation: still one sample, still the first sender's.
    _transcribe(database, store.put(_clip(1)), user_id=2, correction="ciao, a tutti")
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=SPLIT)
    assert [(s.audio_sha256, s.text, s.user_id) for s in samples] == [
        (ref.sha256, "Ciao a tutti!", 1)
    ]


def test_import_is_idempotent(database: Database, store: AudioStore) -> None:
    ref = store.put(_clip(3))
    with database.unit_of_work() as uow:
        assert add_labelled_sample(uow.session, audio=ref, text="uno due tre") == "added"
        assert add_labelled_sample(uow.session, audio=ref, text=" uno due tre ") == "unchanged"
        assert add_labelled_sample(uow.session, audio=ref, text="uno, due, tre") == "updated"
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=SPLIT)
        user = repository.get_user(uow.session, repository.IMPORT_USER_ID)
    assert [s.text for s in samples] == ["uno, due, tre"]
    assert user is not None and user.kind == "system"


def test_an_imported_files_long_path_is_cut_to_its_column(
    database: Database, store: AudioStore
) -> None:
    """PostgreSQL refuses a value longer than the column (the whole import batch with it)."""
    long_path = "cartella/" * 400 + "clip.wav"
    with database.unit_of_work() as uow:
        add_labelled_sample(
            uow.session, audio=store.put(_clip(4)), text="uno", source_ref=long_path
        )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        (row,) = uow.session.scalars(select(Transcription))
    assert row.source_ref == long_path[:PATH_CHARS]


def test_stats_and_new_samples_since_last_training_run(
    database: Database, store: AudioStore
) -> None:
    with database.unit_of_work() as uow:
        refs = [store.put(_clip(seed)) for seed in range(60)]
        for ref in refs[:40]:
            add_labelled_sample(uow.session, audio=ref, text="vecchio")
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        stats = sample_stats(uow.session, policy=SPLIT)
        cutoff = max(s.correction_id for s in list_samples(uow.session, policy=SPLIT))
    assert stats.samples == 40 and stats.train + stats.eval == 40
    assert stats.audio_seconds == pytest.approx(4.0)
    assert stats.new_since_last_training_run == stats.train
    with database.unit_of_work() as uow:
        done = training_records.create_training_run(uow.session, config={})
        training_records.start_training_run(
            uow.session, done.id, samples_used=40, max_correction_id=cutoff
        )
        training_records.finish_training_run(uow.session, done.id, status=RunStatus.DONE)
        for ref in refs[40:]:
            add_labelled_sample(uow.session, audio=ref, text="nuovo")
        # A failed run does not reset the count.
        failed = training_records.create_training_run(uow.session, config={})
        training_records.start_training_run(
            uow.session, failed.id, samples_used=60, max_correction_id=10**6
        )
        training_records.finish_training_run(
            uow.session, failed.id, status=RunStatus.FAILED, error="oom"
        )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        new_train = sum(
            1 for s in list_samples(uow.session, TRAIN, policy=SPLIT) if s.text == "nuovo"
        )
        assert count_new_samples(uow.session, policy=SPLIT) == new_train
        assert sample_stats(uow.session, policy=SPLIT).new_since_last_training_run == new_train
        assert sample_stats(uow.session, policy=SPLIT).samples == 60


# --- privacy ----------------------------------------------------------------------------


def test_purge_drops_only_old_uncorrected_audio(database: Database, store: AudioStore) -> None:
    old_plain = store.put(_clip(10))
    old_corrected = store.put(_clip(11))
    recent_plain = store.put(_clip(12))
    shared = store.put(_clip(13))
    old_id = _transcribe(database, old_plain, user_id=1, created=T0)
    _transcribe(database, old_corrected, user_id=1, correction="giusto", created=T0)
    _transcribe(database, recent_plain, user_id=1, created=T0 + timedelta(days=40))
    _transcribe(database, shared, user_id=1, created=T0)  # old, uncorrected ...
    _transcribe(database, shared, user_id=2, created=T0 + timedelta(days=40))  # ... but reused

    cutoff = T0 + timedelta(days=30)
    with database.unit_of_work() as uow:
        assert purge_uncorrected_audio(uow.session, store, cutoff) == 2
        # rolled back: nothing may be deleted
    assert store.exists(old_plain.sha256)
    with database.unit_of_work() as uow:
        assert purge_uncorrected_audio(uow.session, store, cutoff, now=cutoff) == 2
        assert store.exists(old_plain.sha256)  # files go only after the commit
        uow.commit()
    assert not store.exists(old_plain.sha256)
    assert store.exists(old_corrected.sha256)
    assert store.exists(recent_plain.sha256)
    assert store.exists(shared.sha256)
    with database.unit_of_work(read_only=True) as uow:
        purged = repository.get_transcription(uow.session, old_id)
        assert purged is not None
        assert (purged.audio_sha256, purged.audio_purged_at, purged.text) == (None, cutoff, "testo")
    with database.unit_of_work() as uow:
        assert purge_uncorrected_audio(uow.session, store, cutoff) == 0


def test_retention_leaves_the_share_of_uncorrected_transcripts_as_it_was(
    database: Database, store: AudioStore
) -> None:
    """Retention drops only uncorrected audio: the gate's selection correction must still
    count those transcripts as served and right, or it fades out as the bot ages."""
    for n in range(10):
        _transcribe(database, store.put(_clip(40 + n)), user_id=1, created=T0,
                    correction="giusto" if n == 0 else None)  # fmt: skip
    with database.unit_of_work() as uow:
        before = uncorrected_share(uow.session)
        assert purge_uncorrected_audio(uow.session, store, T0 + timedelta(days=30)) == 9
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert uncorrected_share(uow.session) == before == pytest.approx(0.9)


def test_delete_user_keeps_audio_another_user_still_uses(
    database: Database, store: AudioStore
) -> None:
    own = store.put(_clip(20))
    shared = store.put(_clip(21))
    theirs = store.put(_clip(22))
    own_id = _transcribe(database, own, user_id=1, correction="mia")
    _transcribe(database, shared, user_id=1, correction="condivisa")
    other_shared = _transcribe(database, shared, user_id=2)
    other_own = _transcribe(database, theirs, user_id=2)
    with database.unit_of_work() as uow:
        # user 2 corrects user 1's transcription; user 1 corrects user 2's
        repository.add_correction(uow.session, transcription_id=own_id, user_id=2, text="tua")
        repository.add_correction(uow.session, transcription_id=other_own, user_id=1, text="sua")
        repository.add_reply_messages(uow.session, own_id, chat_id=1, message_ids=[5])
        from storage import jobs

        jobs.enqueue_job(uow.session, kind="t", payload={"file_id": "x"}, user_id=1)
        jobs.enqueue_job(uow.session, kind="t", payload={}, user_id=2)
        uow.commit()

    with database.unit_of_work() as uow:
        counts = delete_user_data(uow.session, store, 1)
        uow.commit()
    assert (counts.users, counts.transcriptions, counts.corrections, counts.jobs) == (1, 2, 4, 1)
    assert counts.audio_files == 1
    assert not store.exists(own.sha256)
    assert store.exists(shared.sha256) and store.exists(theirs.sha256)
    with database.unit_of_work(read_only=True) as uow:
        s = uow.session
        assert repository.get_user(s, 1) is None
        assert repository.get_transcription(s, own_id) is None
        assert repository.find_transcription_by_reply(s, chat_id=1, message_id=5) is None
        assert repository.get_transcription(s, other_shared) is not None
        assert repository.list_corrections(s, other_own) == []
        from storage import jobs

        assert queue_counts.count_open_jobs(s) == 1
        assert [sample.user_id for sample in list_samples(s, policy=SPLIT)] == []


def test_delete_user_rolled_back_deletes_no_file(database: Database, store: AudioStore) -> None:
    ref = store.put(_clip(30))
    _transcribe(database, ref, user_id=1)
    with pytest.raises(RuntimeError), database.unit_of_work() as uow:
        assert delete_user_data(uow.session, store, 1).audio_files == 1
        raise RuntimeError("crash before commit")
    assert store.exists(ref.sha256)
    with database.unit_of_work() as uow:
        # A savepoint released after the deletion is not the commit.
        counts = delete_user_data(uow.session, store, 1)
        repository.import_user(uow.session)
        with uow.session.begin_nested():
            repository.touch_user(uow.session, 9)
        assert store.exists(ref.sha256)
        uow.commit()
    assert counts.transcriptions == 1
    assert not store.exists(ref.sha256)
