"""Which documents are audio or video: by MIME type, else by the file's extension (a client
that does not know the type sends application/octet-stream)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from telegram import Chat, Document, Message

from bot.handlers.media import media_of

OCTET_STREAM = "application/octet-stream"


def _document(name: str, mime: str) -> Message:
    document = Document("id", "unique", file_name=name, mime_type=mime)
    chat = Chat(1, Chat.PRIVATE)
    return Message(1, datetime(2026, 1, 1, tzinfo=UTC), chat, document=document)


@pytest.mark.parametrize(
    "name",
    ["nota.aiff", "memo.caf", "intervista.wma", "registrazione.ts", "audio.mka", "libro.m4b",
     "lezione.mpg", "vecchio.flv", "clip.wmv", "NOTA.OGG"],
)  # fmt: skip
def test_a_container_the_decoder_reads_is_media_by_its_extension(name: str) -> None:
    job = media_of(_document(name, OCTET_STREAM))
    assert job is not None and job.file_name == name


@pytest.mark.parametrize(
    ("name", "mime"),
    [("fattura.pdf", "application/pdf"), ("note.txt", OCTET_STREAM), ("foto.jpg", "image/jpeg")],
)
def test_other_documents_are_not_media(name: str, mime: str) -> None:
    assert media_of(_document(name, mime)) is None


def test_an_audio_mime_type_is_enough() -> None:
    assert media_of(_document("senza_estensione", "audio/x-whatever")) is not None
