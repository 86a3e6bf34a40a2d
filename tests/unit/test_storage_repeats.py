"""An owner's repeat in the same chat is tied to the row they already have, not copied:
only for the very same transcript of the very same file (source, audio, model,
vocabulary, text, segments), only in that chat, and only for a row from the last day
(retention counts from a row's creation)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from storage import repository
from storage.audio_store import AudioRef
from storage.models import utcnow
from storage.repeats import OWN_COPY_WINDOW, TranscriptRow, save_transcript
from storage.unit_of_work import Database

USER, OTHER, CHAT = 7, 8, 70
ROW = TranscriptRow(
    source_kind="voice", source_ref="u-1", text="ciao a tutti",
    audio=AudioRef(sha256="a" * 64, path=Path("/nowhere"), duration=2.0),
    model_version="v1", language="it",
    segments=[{"start": 0.0, "end": 2.0, "text": "ciao a tutti"}], tags=["saluti"],
    timings={}, vocabulary_sha256=None,
)  # fmt: skip


def test_a_repeat_reuses_the_owners_row_only_for_the_same_transcript(tmp_path: Path) -> None:
    database = Database.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with database.unit_of_work() as uow:
            session = uow.session
            for user in (USER, OTHER):
                repository.touch_user(session, user)
            first = save_transcript(session, ROW, owner=USER, chat_id=CHAT, user_message_id=1)
            again = save_transcript(session, ROW, owner=USER, chat_id=CHAT, user_message_id=2)
            assert again.id == first.id
            others = [
                save_transcript(session, ROW, owner=OTHER, chat_id=CHAT, user_message_id=3),
                save_transcript(session, ROW, owner=USER, chat_id=CHAT + 1, user_message_id=4),
                save_transcript(
                    session,
                    dataclasses.replace(ROW, source_ref="u-2"),  # uploaded anew
                    owner=USER,
                    chat_id=CHAT,
                    user_message_id=9,
                ),
                save_transcript(
                    session,
                    dataclasses.replace(ROW, model_version="v2"),
                    owner=USER,
                    chat_id=CHAT,
                    user_message_id=5,
                ),
                save_transcript(
                    session,
                    dataclasses.replace(ROW, vocabulary_sha256="b" * 64),
                    owner=USER,
                    chat_id=CHAT,
                    user_message_id=6,
                ),
                save_transcript(
                    session,
                    dataclasses.replace(ROW, segments=[]),
                    owner=USER,
                    chat_id=CHAT,
                    user_message_id=7,
                ),
                save_transcript(
                    session,
                    ROW,
                    owner=USER,
                    chat_id=CHAT,
                    user_message_id=8,
                    now=utcnow() + OWN_COPY_WINDOW * 2,
                ),
            ]
            assert len({first.id, *(row.id for row in others)}) == 1 + len(others)
            uow.commit()
    finally:
        database.close()
