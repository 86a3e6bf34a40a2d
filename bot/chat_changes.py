"""The bot's side of ``storage.chat_changes``: a chat the bot can no longer answer (removed,
muted) and a group upgraded to a supergroup. Each call one short transaction, synchronous
(callers use ``asyncio.to_thread``). No ``telegram`` here."""

from __future__ import annotations

import logging

from storage import chat_changes
from storage.chat_changes import CHAT_UNREACHABLE_ERROR, ChatMove
from storage.unit_of_work import Database

log = logging.getLogger(__name__)


def unreachable_error(detail: str) -> str:
    """A job's error when its chat cannot be answered: what Telegram said, or why."""
    return f"{CHAT_UNREACHABLE_ERROR}: {detail}"


def end_waiting_jobs(db: Database, chat_id: int, detail: str) -> int:
    """The bot was removed or muted in ``chat_id``: its waiting jobs end now, unanswered."""
    with db.unit_of_work() as uow:
        ended = chat_changes.end_waiting_jobs(uow.session, chat_id, error=unreachable_error(detail))
        uow.commit()
    if ended:
        log.warning("chat %s: %s; %d waiting job(s) ended", chat_id, detail, ended)
    return ended


def migrate_chat(db: Database, old_chat_id: int, new_chat_id: int) -> ChatMove:
    """The group ``old_chat_id`` became the supergroup ``new_chat_id``: its settings and
    open jobs follow (idempotent: Telegram announces it in both chats)."""
    with db.unit_of_work() as uow:
        moved = chat_changes.migrate_chat(uow.session, old_chat_id, new_chat_id)
        uow.commit()
    if moved.settings_moved or moved.jobs_moved:
        log.info(
            "chat %s became %s: settings %s, %d open job(s) moved",
            old_chat_id,
            new_chat_id,
            "moved" if moved.settings_moved else "unchanged",
            moved.jobs_moved,
        )
    return moved


def requeue_moved_job(
    db: Database, old_chat_id: int, new_chat_id: int, *, job_id: int, owner: str, attempt: int
) -> bool:
    """A running job met its chat's upgrade: the chat moves (as ``migrate_chat``), and the
    job goes back to the queue, to be answered in the new chat."""
    with db.unit_of_work() as uow:
        chat_changes.migrate_chat(uow.session, old_chat_id, new_chat_id)
        requeued = chat_changes.requeue_moved_job(uow.session, job_id, owner=owner, attempt=attempt)
        uow.commit()
    log.warning(
        "chat %s became %s: job %s %s",
        old_chat_id,
        new_chat_id,
        job_id,
        "queued again there" if requeued else "no longer held here",
    )
    return requeued
