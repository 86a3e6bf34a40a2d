"""Confirmed labels in storage (issue 19, the "✅ Giusto" button), on a migrated database:
who may confirm what, how a confirmation becomes a sample (its own kind, not selected on
errors, the same split, the labelling policy, the per-user training cap), and what it
means for the gate's share of uncorrected transcripts."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from storage import repository
from storage.audio_store import AudioRef, AudioStore
from storage.confirmations import ConfirmOutcome, confirm_transcript
from storage.models import SOURCE_IMPORT
from storage.samples import TRAIN, cap_user_words, list_samples, uncorrected_share
from storage.unit_of_work import Database
from tests.support.labelling import SPLIT, quarantine_of

OWNER, OTHER = 11, 22
CHAT = 11
MAX_SECONDS = 30.0
TEXT = "Il treno per Roma parte alle nove."


def _clip(store: AudioStore, seed: int, seconds: float = 1.0) -> AudioRef:
    samples = np.random.default_rng(seed).uniform(-0.5, 0.5, int(16_000 * seconds))
    return store.put(samples.astype(np.float32))


def _send(
    database: Database, ref: AudioRef, user_id: int, text: str = TEXT, **fields: object
) -> int:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, user_id)
        row = repository.add_transcription(
            uow.session,
            source_kind=str(fields.get("source_kind", "voice")),
            text=text,
            user_id=user_id,
            chat_id=user_id,
            audio=ref,
        )
        uow.commit()
        return row.id


def _confirm(database: Database, transcription_id: int, user_id: int) -> ConfirmOutcome:
    with database.unit_of_work() as uow:
        outcome = confirm_transcript(
            uow.session,
            transcription_id=transcription_id,
            chat_id=user_id,
            user_id=user_id,
            max_seconds=MAX_SECONDS,
        )
        uow.commit()
        return outcome


def _correct(database: Database, transcription_id: int, user_id: int, text: str) -> None:
    with database.unit_of_work() as uow:
        repository.add_correction(
            uow.session, transcription_id=transcription_id, user_id=user_id, text=text
        )
        uow.commit()


def _samples(database: Database, split=None) -> list:
    with database.unit_of_work(read_only=True) as uow:
        return list_samples(uow.session, split, policy=SPLIT)


def test_only_usable_clips_of_ones_own_are_confirmed_once(
    database: Database, store: AudioStore
) -> None:
    mine = _send(database, _clip(store, 1), OWNER)
    with database.unit_of_work() as uow:  # someone else, or from another chat
        for user_id, chat_id in ((OTHER, CHAT), (OWNER, 999)):
            outcome = confirm_transcript(
                uow.session, transcription_id=mine, chat_id=chat_id, user_id=user_id,
                max_seconds=MAX_SECONDS,
            )  # fmt: skip
            assert outcome in (ConfirmOutcome.NOT_OWNER, ConfirmOutcome.NOT_FOUND)
    assert _samples(database) == []
    assert _confirm(database, mine, OWNER) is ConfirmOutcome.CONFIRMED
    assert _confirm(database, mine, OWNER) is ConfirmOutcome.ALREADY_CONFIRMED
    (sample,) = _samples(database)
    assert (sample.text, sample.confirmed, sample.selected) == (TEXT, True, False)

    # Too long for training, an empty transcript, a control token, an import: not usable.
    long_clip = _send(database, _clip(store, 2, seconds=MAX_SECONDS + 1), OWNER)
    empty = _send(database, _clip(store, 3), OWNER, text=" ")
    token = _send(database, _clip(store, 4), OWNER, text="Ciao <|endoftext|> a tutti.")
    imported = _send(database, _clip(store, 5), OWNER, source_kind=SOURCE_IMPORT)
    for transcription_id in (long_clip, empty, token, imported):
        assert _confirm(database, transcription_id, OWNER) is ConfirmOutcome.NOT_USABLE
    assert _confirm(database, 10_000, OWNER) is ConfirmOutcome.NOT_FOUND
    assert len(_samples(database)) == 1


def test_a_correction_wins_over_a_confirmation_and_is_not_undone_by_one(
    database: Database, store: AudioStore
) -> None:
    confirmed_first = _send(database, _clip(store, 1), OWNER)
    corrected_first = _send(database, _clip(store, 2), OWNER, text="Il gatto dorme sul divano.")
    assert _confirm(database, confirmed_first, OWNER) is ConfirmOutcome.CONFIRMED
    _correct(database, confirmed_first, OWNER, "Il treno per Roma parte alle dieci.")
    _correct(database, corrected_first, OWNER, "Il cane dorme sul divano.")
    assert _confirm(database, corrected_first, OWNER) is ConfirmOutcome.CORRECTED
    samples = {s.transcription_id: s for s in _samples(database)}
    assert samples[confirmed_first].text == "Il treno per Roma parte alle dieci."
    assert not samples[confirmed_first].confirmed and samples[confirmed_first].selected
    assert samples[corrected_first].text == "Il cane dorme sul divano."
    # Two transcripts served, both corrected: nothing the gate may count as right.
    with database.unit_of_work(read_only=True) as uow:
        assert uncorrected_share(uow.session) == 0.0


def test_confirmations_follow_the_labelling_policy_and_the_gate_share(
    database: Database, store: AudioStore
) -> None:
    """The owner's confirmation labels the clip; a forwarder who "corrects" it into
    something else puts it in quarantine, as a disagreeing correction would."""
    ref = _clip(store, 1)
    owner_row = _send(database, ref, OWNER)
    forwarder_row = _send(database, ref, OTHER)
    right = _send(database, _clip(store, 2), OWNER, text="La pizza è nata a Napoli.")
    assert _confirm(database, owner_row, OWNER) is ConfirmOutcome.CONFIRMED
    assert _confirm(database, right, OWNER) is ConfirmOutcome.CONFIRMED
    with database.unit_of_work(read_only=True) as uow:
        assert uncorrected_share(uow.session) == 1.0  # confirmed is not corrected
    _correct(database, forwarder_row, OTHER, "Votate per me alle prossime elezioni.")
    assert quarantine_of(database) == [(OWNER, OTHER)]
    assert [s.transcription_id for s in _samples(database)] == [right]
    with database.unit_of_work(read_only=True) as uow:
        assert uncorrected_share(uow.session) == pytest.approx(2 / 3)


def test_training_caps_confirmed_words_per_user_like_corrections(
    database: Database, store: AudioStore
) -> None:
    """Confirmed samples are training samples, and one user's confirmations cannot fill
    the training words beyond the cap."""
    for n in range(40):
        row = _send(database, _clip(store, 100 + n), OWNER, text=f"Frase confermata numero {n}.")
        assert _confirm(database, row, OWNER) is ConfirmOutcome.CONFIRMED
    for n in range(5):
        row = _send(database, _clip(store, 200 + n), OTHER, text=f"Altra frase numero {n}.")
        _correct(database, row, OTHER, f"Altra frase corretta numero {n}.")
    train = _samples(database, TRAIN)
    assert sum(s.confirmed for s in train) >= 20
    capped = cap_user_words(train, max_share=0.5, seed=0)
    words = {OWNER: 0, OTHER: 0}
    for sample in capped:
        words[sample.user_id] += len(sample.text.split())
    assert words[OWNER] <= 0.5 * sum(words.values()) + 4  # one sample's words of slack
    assert words[OTHER] == sum(
        len(s.text.split()) for s in train if s.user_id == OTHER
    )  # the other user's all stay


def test_a_press_under_an_older_copy_does_not_undo_a_later_correction(
    database: Database, store: AudioStore
) -> None:
    """The same note sent twice: two rows, two buttons. A correction of the second copy
    is the user's label for the audio; ✅ under the first must not replace it. A copy
    sent after the correction is a new transcript, and confirming that one is the user's
    latest word again."""
    ref = _clip(store, 1)
    first, second = _send(database, ref, OWNER), _send(database, ref, OWNER)
    fix = "Il treno per Roma parte alle dieci."
    _correct(database, second, OWNER, fix)
    assert _confirm(database, first, OWNER) is ConfirmOutcome.CORRECTED
    with database.unit_of_work(read_only=True) as uow:
        assert repository.list_corrections(uow.session, first) == []
    (sample,) = _samples(database)
    assert (sample.text, sample.confirmed) == (fix, False)

    third = _send(database, ref, OWNER, text=fix)
    assert _confirm(database, third, OWNER) is ConfirmOutcome.CONFIRMED
    (sample,) = _samples(database)
    assert (sample.text, sample.confirmed, sample.transcription_id) == (fix, True, third)


def test_a_double_press_on_postgres_stores_one_confirmation(request, store: AudioStore) -> None:
    """Two presses handled at once (PTB runs updates concurrently): the second waits for
    the first's transaction, then finds its confirmation."""
    from tests.support.postgres import fresh_database

    server = request.getfixturevalue("postgres_url")
    database = Database.open(fresh_database(server, "double_confirm"))
    try:
        row = _send(database, _clip(store, 1), OWNER)
        second: list[ConfirmOutcome] = []
        with database.unit_of_work() as first:
            outcome = confirm_transcript(
                first.session, transcription_id=row, chat_id=OWNER, user_id=OWNER,
                max_seconds=MAX_SECONDS,
            )  # fmt: skip
            assert outcome is ConfirmOutcome.CONFIRMED
            press = threading.Thread(target=lambda: second.append(_confirm(database, row, OWNER)))
            press.start()
            press.join(timeout=1.0)
            assert press.is_alive()  # waits for the first press to commit
            first.commit()
        press.join(timeout=30)
        assert second == [ConfirmOutcome.ALREADY_CONFIRMED]
        with database.unit_of_work(read_only=True) as uow:
            assert len(repository.list_corrections(uow.session, row)) == 1
            assert repository.storage_counts(uow.session).confirmations == 1
    finally:
        database.close()
