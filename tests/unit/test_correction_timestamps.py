"""A correction copied from the "testo con i tempi" output: its stamps are not speech.
Stored as sent, "[00:04] come state" trained the model to say "00 04", and a copy with no
word changed counted as a correction."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.corrections import CorrectionOutcome, CorrectionService, without_timestamps
from storage import repository
from storage.models import SOURCE_VOICE
from storage.unit_of_work import Database

CHAT, MESSAGE, USER = 5, 77, 5


@pytest.fixture
def service(tmp_path: Path):
    database = Database.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, USER)
        row = repository.add_transcription(
            uow.session, source_kind=SOURCE_VOICE, text="ciao a tutti come stete",
            user_id=USER, chat_id=CHAT,
        )  # fmt: skip
        repository.add_reply_messages(uow.session, row.id, chat_id=CHAT, message_ids=[MESSAGE])
        uow.commit()
    yield CorrectionService(database, max_chars=1000, training_max_seconds=30.0), row.id
    database.close()


def _record(service: CorrectionService, text: str) -> CorrectionOutcome:
    return service.record(
        chat_id=CHAT, replied_message_id=MESSAGE, user_id=USER, text=text, group=False
    )


def test_a_copied_timestamped_transcript_is_stored_without_its_stamps(service) -> None:
    corrections, row_id = service
    unchanged = "[00:00] ciao a tutti\n[00:04] come stete"
    assert _record(corrections, unchanged) is CorrectionOutcome.UNCHANGED
    assert _record(corrections, "[00:00] ciao a tutti\n[00:04] come state") is (
        CorrectionOutcome.SAVED
    )
    with corrections.db.unit_of_work(read_only=True) as uow:
        assert repository.latest_correction(uow.session, row_id).text == "ciao a tutti come state"


def test_only_text_that_is_all_stamped_lines_loses_its_brackets() -> None:
    assert without_timestamps("[1:02:03] lungo\n[1:02:09]  altro") == "lungo altro"
    assert without_timestamps("Alle [10:30] ci vediamo") == "Alle [10:30] ci vediamo"
    assert without_timestamps("ciao\n[00:04] come") == "ciao\n[00:04] come"
