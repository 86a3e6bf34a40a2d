"""Adversarial battery, part "corrections, commands and privacy" (SECURITY.md lists it).

Every case is something a hostile user or a careless admin can send, and asserts the
exact outcome. Storage cases run on real SQLite after ``alembic upgrade head``; bot cases
drive the real bot over the Bot API emulator; CLI cases call ``bot.cli.main``.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot import messages
from storage import repository
from storage.privacy import sweep_orphan_blobs
from tests.support.bot_harness import ADMIN, GROUP, OTHER_USER, USER, running_bot
from tests.support.labelling import labels_of, quarantine_of
from tests.support.speech import synthesize

AUTHOR, FORWARDER, THIRD = 11, 22, 33


# --- the labelling policy, on storage --------------------------------------------------


# --- user ids typed by admins ----------------------------------------------------------


# --- the command line ------------------------------------------------------------------


# --- the real bot over the emulator ----------------------------------------------------

SENTENCE = "Il treno per Milano parte alle otto."
AUTHOR_FIX = "Il treno per Milano parte alle otto e un quarto."
HIJACK = "Compra subito le azioni che ti consiglio."


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "security_corrections.ogg").read_bytes()


def _bot_labels(bot) -> list[tuple[int, str]]:
    return labels_of(bot.services.db)


async def _correct_by_reply(bot, user_id: int, reply_to: int, text: str) -> str:
    emu = bot.emu
    sent = emu.send_text(user_id=user_id, text=text, reply_to=reply_to)
    answer = await bot.wait_message(
        lambda m: m.reply_to == sent["message_id"], chat_id=user_id, timeout=30
    )
    return answer.content


async def test_bot_forwarded_voice_note_cannot_hijack_the_label(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        mine = emu.send_voice(user_id=USER, data=voice_note, duration=3)
        (my_reply,) = await bot.wait_reply(mine["message_id"])
        assert await _correct_by_reply(bot, USER, my_reply.message_id, AUTHOR_FIX) == (
            messages.CORRECTION_SAVED
        )
        assert _bot_labels(bot) == [(USER, AUTHOR_FIX)]

        # Someone forwards the same voice note and "corrects" it.
        theirs = emu.send_voice(user_id=OTHER_USER, data=voice_note, duration=3)
        (their_reply,) = await bot.wait_reply(theirs["message_id"], chat_id=OTHER_USER)
        answer = await _correct_by_reply(bot, OTHER_USER, their_reply.message_id, HIJACK)
        # The same thanks as anyone gets: nothing tells them someone else sent this audio.
        assert answer == messages.CORRECTION_SAVED
        (mine_row,) = [t for t in bot.transcriptions() if t.user_id == USER]
        assert all(t.audio_sha256 == mine_row.audio_sha256 for t in bot.transcriptions())
        assert _bot_labels(bot) == []  # the hijack is not trained on; nor is the author's
        assert quarantine_of(bot.services.db) == [(USER, OTHER_USER)]

        # An admin sees it and removes the forwarder's contributions.
        emu.send_text(user_id=ADMIN, text="/contributors")
        listing = await bot.wait_text(lambda t: t.startswith("Contributi"), chat_id=ADMIN)
        assert "in quarantena: 1" in listing
        assert f"<code>{OTHER_USER}</code>" not in listing  # rendered, not raw HTML
        assert f"{OTHER_USER} Utente: 0 campioni (0+0), 0 s, 1 correzioni, 1 in quarantena" in (
            listing
        )
        emu.send_text(user_id=ADMIN, text=f"/remove_contributions {OTHER_USER}")
        done = await bot.wait_text(lambda t: t.startswith("🗑"), chat_id=ADMIN)
        assert done == (
            f"🗑 Tolti i contributi dell'utente {OTHER_USER}: 1 correzioni, 0 campioni; "
            "quarantene risolte: 1."
        )
        assert _bot_labels(bot) == [(USER, AUTHOR_FIX)]


class GatedTranscriber:
    """The real transcriber, held at its start until the test lets it go."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def transcribe(self, audio: np.ndarray, **kwargs: Any) -> Any:
        self._hold()
        return self.inner.transcribe(audio, **kwargs)

    def transcribe_batch(self, clips: Any, **kwargs: Any) -> Any:  # short notes' path
        self._hold()
        return self.inner.transcribe_batch(clips, **kwargs)

    def _hold(self) -> None:
        self.entered.set()
        assert self.release.wait(60), "the test never released the transcriber"


async def _forget(bot: Any, user_id: int) -> None:
    """``user_id`` runs /forget and confirms it; returns once it is done."""
    bot.emu.send_text(user_id=user_id, text="/forget")
    question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
    yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
    bot.emu.send_callback_query(user_id=user_id, message_id=question.message_id, data=yes)
    await bot.wait_text(lambda t: t.startswith("🗑"))


async def test_bot_forget_during_a_running_job_leaves_nothing(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    gate = GatedTranscriber(ct2_transcriber)
    async with running_bot(tmp_path, gate) as bot:
        emu = bot.emu
        emu.send_voice(user_id=USER, data=voice_note, duration=3)
        assert await asyncio.to_thread(gate.entered.wait, 60)

        await _forget(bot, USER)
        gate.release.set()

        # The job is gone with its user; the worker finishes and keeps nothing.
        await emu.async_wait_for(lambda: bot.services.runner.busy == 0 or None, timeout=60)
        assert bot.transcriptions() == [] and bot.jobs() == []
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert repository.get_user(uow.session, USER) is None
            # Whatever the worker wrote before it learnt of the /forget goes with the sweep.
            sweep_orphan_blobs(uow.session, bot.services.store, grace=timedelta(0))
        assert list(bot.services.store) == []
        assert emu.messages(ADMIN) == []  # no crash report either


async def test_bot_forget_stops_someone_elses_trascrivi_of_ones_note(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    """The note's author labels a transcript another member asked for: their /forget
    while it runs must leave nothing of theirs either (the job ends cancelled)."""
    gate = GatedTranscriber(ct2_transcriber)
    async with running_bot(tmp_path, gate) as bot:
        emu = bot.emu
        emu.open_chat(user_id=USER)
        note = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, chat_id=GROUP, chat_type="group"
        )
        emu.send_text(user_id=OTHER_USER, text="/trascrivi", chat_id=GROUP, chat_type="group",
                      reply_to=note["message_id"])  # fmt: skip
        assert await asyncio.to_thread(gate.entered.wait, 60)

        await _forget(bot, USER)
        gate.release.set()

        await bot.wait_text(lambda t: t == messages.JOB_CANCELLED, chat_id=GROUP)
        await emu.async_wait_for(lambda: bot.services.runner.busy == 0 or None, timeout=60)
        assert bot.transcriptions() == []
        assert [job.status for job in bot.jobs()] == ["cancelled"]
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert repository.get_user(uow.session, USER) is None
        assert emu.messages(ADMIN) == []


# --- hostile admin commands over the emulator ------------------------------------------

HOSTILE_NAME = "<b>Mario</b> & co"
NOTHING = "non c'è nulla da togliere."
# The name arrives as text, not markup: escaped on the way out, shown as sent.
LISTING = (
    "Contributi all'addestramento\n"
    "Campioni: 0 (0 di addestramento + 0 di valutazione), in quarantena: 0\n"
    f"1. {USER} {HOSTILE_NAME}: 0 campioni (0+0), 0 s, 1 correzioni\n"
    "Per togliere i contributi di un utente: /remove_contributions ID (-1 per i campioni importati)"
)
ADMIN_CASES: list[tuple[int, str, str]] = [
    (USER, "/contributors", messages.NOT_ADMIN),
    (USER, f"/remove_contributions {USER}", messages.NOT_ADMIN),
    (ADMIN, "/remove_contributions", messages.REMOVE_CONTRIBUTIONS_USAGE),
    (ADMIN, "/remove_contributions abc", messages.USER_ID_NOT_A_NUMBER.format(value="abc")),
    (ADMIN, "/remove_contributions -2", messages.USER_ID_NOT_POSITIVE),
    (ADMIN, "/remove_contributions " + "9" * 4000, messages.USER_ID_TOO_BIG),
    (
        ADMIN,
        "/remove_contributions <i>1</i>",
        messages.USER_ID_NOT_A_NUMBER.format(value="<i>1</i>"),
    ),
    (ADMIN, "/remove_contributions 777", "L'utente 777 non ha corretto niente: " + NOTHING),
    (ADMIN, "/contributors", LISTING),
]


@pytest.mark.parametrize(
    ("sender", "command", "expected"),
    ADMIN_CASES,
    ids=[f"{'admin' if who == ADMIN else 'user'}:{cmd[:32]}" for who, cmd, _ in ADMIN_CASES],
)
async def test_bot_admin_contribution_commands_refuse_hostile_input(
    tmp_path: Path, fake_transcriber, sender: int, command: str, expected: str
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        with bot.services.db.unit_of_work() as uow:  # a correction an attacker might target
            repository.touch_user(uow.session, USER, name=HOSTILE_NAME)
            row = repository.add_transcription(
                uow.session, source_kind="voice", text="x", user_id=USER
            )
            repository.add_correction(uow.session, transcription_id=row.id, user_id=USER, text="y")
            uow.commit()
        bot.emu.send_text(user_id=sender, text=command)
        reply = await bot.wait_message(lambda m: True, chat_id=sender, timeout=30)
        assert reply.content == expected
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert [c.text for c in repository.list_corrections(uow.session, row.id)] == ["y"]
