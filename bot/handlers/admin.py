"""Admin commands. Admins are the user ids in ``WHISPER_IT_ADMIN_IDS``; everyone else gets
a polite refusal."""

from __future__ import annotations

import asyncio
import functools
import html
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot import messages
from bot.container import Services
from bot.corrections import UserIdError, parse_user_id
from bot.handlers.common import answer, services
from storage import jobs as job_queue
from storage import repository
from storage.contributions import (
    Contribution,
    RemovedContributions,
    list_contributions,
    remove_user_contributions,
)
from storage.samples import sample_stats

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]

ADMIN_COMMANDS = (
    ("stats", "Statistiche (admin)"),
    ("contributors", "Chi ha insegnato cosa (admin)"),
    ("remove_contributions", "Togli le correzioni di un utente (admin)"),
)
# /contributors lists this many users; the CLI lists them all.
CONTRIBUTORS_SHOWN = 20


def admin_only(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        if not services(context).settings.is_admin(user.id if user else None):
            await answer(update, messages.NOT_ADMIN)
            return
        await handler(update, context)

    return guarded


def _split_policy(svc: Services) -> dict[str, float | int]:
    """The installation's split, as training uses it (``storage.samples.assign_splits``)."""
    return {
        "eval_fraction": svc.settings.eval_fraction,
        "min_eval_sentences": svc.settings.eval_min_sentences,
    }


def stats_text(svc: Services) -> str:
    with svc.db.unit_of_work(read_only=True) as uow:
        counts = repository.storage_counts(uow.session)
        samples = sample_stats(uow.session, **_split_policy(svc))
        pending = job_queue.count_pending_jobs(uow.session)
    model = svc.pipeline.models
    tagger = svc.pipeline.tagger
    return (
        "<b>Statistiche</b>\n"
        f"Utenti: {counts.users}\n"
        f"Trascrizioni: {counts.transcriptions} ({counts.audio_seconds / 3600:.1f} h di audio)\n"
        f"Correzioni: {counts.corrections}\n"
        f"Campioni di addestramento: {samples.train} + {samples.eval} di valutazione"
        f" ({samples.quarantined} in quarantena)\n"
        f"Coda: {pending} in attesa, {svc.runner.busy} in lavorazione\n"
        f"Modello: {model.spec or 'non ancora caricato'}\n"
        f"Hashtag: {getattr(tagger, 'name', 'disattivati')}"
    )


@admin_only
async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer(update, await asyncio.to_thread(stats_text, services(context)))


def _who(contribution: Contribution) -> str:
    # Names and usernames are chosen by the users: escaped, like everything they send.
    if contribution.username:
        return html.escape(f"@{contribution.username}")
    return html.escape(contribution.name or "—")


def contributors_text(svc: Services) -> str:
    with svc.db.unit_of_work(read_only=True) as uow:
        contributions = list_contributions(uow.session, **_split_policy(svc))
        samples = sample_stats(uow.session, **_split_policy(svc))
    if not contributions:
        return messages.CONTRIBUTORS_EMPTY
    lines = [
        messages.CONTRIBUTORS_HEADER.format(
            samples=samples.samples,
            train=samples.train,
            eval=samples.eval,
            quarantined=samples.quarantined,
        )
    ]
    for rank, c in enumerate(contributions[:CONTRIBUTORS_SHOWN], start=1):
        line = messages.CONTRIBUTOR_LINE.format(
            rank=rank,
            user_id=c.user_id,
            who=_who(c),
            samples=c.samples,
            train=c.train,
            eval=c.eval,
            seconds=round(c.seconds),
            corrections=c.corrections,
        )
        if c.quarantined:
            line += messages.CONTRIBUTOR_QUARANTINED.format(quarantined=c.quarantined)
        lines.append(line)
    if len(contributions) > CONTRIBUTORS_SHOWN:
        lines.append(
            messages.CONTRIBUTORS_MORE.format(count=len(contributions) - CONTRIBUTORS_SHOWN)
        )
    lines.append(messages.CONTRIBUTORS_FOOTER)
    return "\n".join(lines)


def remove_contributions(svc: Services, user_id: int) -> RemovedContributions:
    with svc.db.unit_of_work() as uow:
        removed = remove_user_contributions(uow.session, user_id)
        uow.commit()
    return removed


@admin_only
async def contributors(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer(update, await asyncio.to_thread(contributors_text, services(context)))


@admin_only
async def remove_contributions_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    try:
        user_id = parse_user_id(context.args or ())
    except UserIdError as exc:
        await answer(update, html.escape(str(exc), quote=False))
        return
    removed = await asyncio.to_thread(remove_contributions, services(context), user_id)
    if not removed.corrections:
        await answer(update, messages.CONTRIBUTIONS_NONE.format(user_id=user_id))
        return
    await answer(
        update,
        messages.CONTRIBUTIONS_REMOVED.format(
            user_id=user_id,
            corrections=removed.corrections,
            samples=removed.samples,
            quarantined=removed.quarantined,
        ),
    )


def register(app: Application) -> None:
    app.add_handler(CommandHandler("stats", stats))
    app.add_handler(CommandHandler("contributors", contributors))
    app.add_handler(CommandHandler("remove_contributions", remove_contributions_command))
