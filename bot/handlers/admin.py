"""Admin commands. Admins are the user ids in ``WHISPER_IT_ADMIN_IDS``; everyone else gets
a polite refusal."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.ext import Application, CommandHandler, ContextTypes

from bot import messages
from bot.container import Services
from bot.handlers.common import answer, services
from storage import jobs as job_queue
from storage import repository
from storage.samples import sample_stats

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]

ADMIN_COMMANDS = (("stats", "Statistiche (admin)"),)


def admin_only(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = update.effective_user
        if not services(context).settings.is_admin(user.id if user else None):
            await answer(update, messages.NOT_ADMIN)
            return
        await handler(update, context)

    return guarded


def stats_text(svc: Services) -> str:
    with svc.db.unit_of_work(read_only=True) as uow:
        counts = repository.storage_counts(uow.session)
        samples = sample_stats(uow.session)
        pending = job_queue.count_pending_jobs(uow.session)
    model = svc.transcription.models
    tagger = svc.transcription.tagger
    return (
        "<b>Statistiche</b>\n"
        f"Utenti: {counts.users}\n"
        f"Trascrizioni: {counts.transcriptions} ({counts.audio_seconds / 3600:.1f} h di audio)\n"
        f"Correzioni: {counts.corrections}\n"
        f"Campioni di addestramento: {samples.train} + {samples.eval} di valutazione\n"
        f"Coda: {pending} in attesa, {svc.runner.busy} in lavorazione\n"
        f"Modello: {model.spec or 'non ancora caricato'}\n"
        f"Hashtag: {getattr(tagger, 'name', 'disattivati')}"
    )


@admin_only
async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer(update, await asyncio.to_thread(stats_text, services(context)))


def register(app: Application) -> None:
    app.add_handler(CommandHandler("stats", stats))
