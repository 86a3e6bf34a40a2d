"""The orphan sweep: audio files no row refers to go, recent ones and used ones stay."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from storage import repository
from storage.audio_store import AudioStore
from storage.privacy import delete_blobs_if_unreferenced, sweep_orphan_blobs
from storage.unit_of_work import Database

HOUR = 3600.0


def _clip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, 1_600).astype(np.float32)


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_sweep_deletes_only_old_unreferenced_blobs(database: Database, tmp_path: Path) -> None:
    store = AudioStore(tmp_path / "audio")
    used, old_orphan, new_orphan = (store.put(_clip(seed)) for seed in range(3))
    with database.unit_of_work() as uow:
        repository.add_transcription(uow.session, source_kind="cli", audio=used)
        uow.commit()
    for ref in (used, old_orphan):
        _age(ref.path, 2 * HOUR)
    stale_tmp = used.path.parent / f".{used.sha256}.abc.tmp"
    stale_tmp.write_bytes(b"half a file")
    _age(stale_tmp, 2 * HOUR)
    with database.unit_of_work(read_only=True) as uow:
        counts = sweep_orphan_blobs(uow.session, store, grace=timedelta(hours=1))
    assert (counts.blobs, counts.temporaries) == (1, 1)
    assert set(store) == {used.sha256, new_orphan.sha256}
    assert not stale_tmp.exists()


def test_storing_the_same_audio_again_makes_it_young(database: Database, tmp_path: Path) -> None:
    """A blob about to be referenced by an uncommitted row is not swept from under it."""
    store = AudioStore(tmp_path / "audio")
    ref = store.put(_clip(7))
    _age(ref.path, 2 * HOUR)
    assert store.put(_clip(7)).sha256 == ref.sha256
    with database.unit_of_work(read_only=True) as uow:
        assert sweep_orphan_blobs(uow.session, store).blobs == 0
    assert store.exists(ref.sha256)


def test_discarded_result_blob_goes_after_commit(database: Database, tmp_path: Path) -> None:
    store = AudioStore(tmp_path / "audio")
    ref = store.put(_clip(8))
    with database.unit_of_work() as uow:
        assert delete_blobs_if_unreferenced(uow.session, store, [ref.sha256]) == 1
        assert store.exists(ref.sha256)
        uow.commit()
    assert not store.exists(ref.sha256)


def test_a_pinned_blob_is_not_deleted_until_the_pin_goes(
    database: Database, tmp_path: Path
) -> None:
    store = AudioStore(tmp_path / "audio")
    ref = store.put(_clip(9))
    _age(ref.path, 2 * HOUR)
    with store.pinned(ref.sha256):
        assert not store.delete(ref.sha256)
        assert not store.delete_if_older(ref.sha256, time.time())
        with database.unit_of_work(read_only=True) as uow:
            assert sweep_orphan_blobs(uow.session, store).blobs == 0
        assert store.exists(ref.sha256)
    assert list(ref.path.parent.glob(".*")) == []  # nothing left beside the blob
    assert store.delete(ref.sha256)
    assert not store.exists(ref.sha256)


def test_a_crashed_writers_pin_goes_with_the_sweep(database: Database, tmp_path: Path) -> None:
    store = AudioStore(tmp_path / "audio")
    ref = store.put(_clip(10))
    _age(ref.path, 2 * HOUR)
    pin = ref.path.parent / f".{ref.sha256}.dead.pin"
    pin.touch()
    _age(pin, 2 * HOUR)
    with database.unit_of_work(read_only=True) as uow:
        first = sweep_orphan_blobs(uow.session, store, grace=timedelta(hours=1))
    assert (first.blobs, first.temporaries) == (0, 1)  # the pin still held this sweep
    with database.unit_of_work(read_only=True) as uow:
        assert sweep_orphan_blobs(uow.session, store, grace=timedelta(hours=1)).blobs == 1
    assert not store.exists(ref.sha256)
