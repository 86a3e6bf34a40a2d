"""A correction copied from the "testo con i tempi" output: its stamps are not speech.
Stored as sent, "[00:04] come state" trained the model to say "00 04", and a copy with no
word changed counted as a correction."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.corrections import (
    CorrectionOutcome,
    CorrectionService,
    without_decorations,
    without_timestamps,
)
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


def test_a_whole_copied_message_is_stored_without_its_hashtags_and_title(service) -> None:
    # Telegram's "Copy" takes the whole transcript message: the text, the hashtags
    # paragraph, a link's title. They used to be stored as the label and learnt as words.
    corrections, row_id = service
    copied = "[00:00] ciao a tutti\n[00:04] come state\n\n#saluti #amici\n\n🎬 Un video"
    assert _record(corrections, copied) is CorrectionOutcome.SAVED
    with corrections.db.unit_of_work(read_only=True) as uow:
        assert repository.latest_correction(uow.session, row_id).text == "ciao a tutti come state"
    assert _record(corrections, "ciao a tutti come state\n\n#saluti") is (
        CorrectionOutcome.UNCHANGED
    )


def test_only_the_bots_own_paragraphs_are_taken_off() -> None:
    assert without_decorations("ciao\n\n#uno #due_tre #quattro…") == "ciao"
    assert without_decorations("ciao #uno\n\naltro #due") == "ciao #uno\n\naltro #due"
    assert without_decorations("#uno #due") == "#uno #due"  # nothing left to be the text
    assert without_decorations("il #tag è qui\n\n🎬 Titolo") == "il #tag è qui"
