"""Admin commands. Admins are the user ids in ``WHISPER_IT_ADMIN_IDS``; everyone else gets
a polite refusal."""

from __future__ import annotations

import asyncio
import functools
import html
from collections.abc import Awaitable, Callable

from telegram import Update
from telegram.constants import ChatAction
from telegram.error import Forbidden
from telegram.ext import Application, ContextTypes

from bot import messages
from bot.bootstrap import Services
from bot.corrections import UserIdError, parse_user_id
from bot.handlers.common import answer, answering_privately, command, is_private, sender, services
from storage.contributions import Contribution

Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]

ADMIN_COMMANDS = (
    ("stats", "Statistiche (admin)"),
    ("contributors", "Chi ha insegnato cosa (admin)"),
    ("remove_contributions", "Togli le correzioni di un utente (admin)"),
)
# /contributors lists this many users; the CLI lists them all.
CONTRIBUTORS_SHOWN = 20


def admin_only(handler: Handler) -> Handler:
    """Admins only; typed in a group, the command answers the admin in private and the
    group hears only that it did."""

    @functools.wraps(handler)
    async def guarded(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        user = await sender(update, context)  # an anonymous admin is nobody in particular
        if user is None:
            return
        if not services(context).settings.is_admin(user.id):
            await answer(update, messages.NOT_ADMIN)
            return
        if is_private(update):
            await handler(update, context)
            return
        # Reach the private chat before acting: if the answer cannot get there, nothing
        # has run and repeating the command is safe.
        try:
            await context.bot.send_chat_action(user.id, ChatAction.TYPING)
        except Forbidden:  # the admin never opened a private chat with the bot
            await answer(update, messages.ADMIN_PRIVATE_UNREACHABLE)
            return
        with answering_privately(user.id):
            await handler(update, context)
        await answer(update, messages.ADMIN_ANSWERED_PRIVATELY)

    return guarded


def stats_text(svc: Services) -> str:
    overview = svc.admin.overview()
    counts, samples = overview.counts, overview.samples
    model = svc.pipeline.models
    tagger = svc.pipeline.tagger
    return (
        "<b>Statistiche</b>\n"
        f"Utenti: {counts.users}\n"
        f"Trascrizioni: {counts.transcriptions} ({counts.audio_seconds / 3600:.1f} h di audio)\n"
        f"Correzioni: {counts.corrections} (e {counts.confirmations} conferme ✅)\n"
        f"Campioni di addestramento: {samples.train} + {samples.eval} di valutazione"
        f" ({samples.quarantined} in quarantena)\n"
        f"Coda: {overview.pending_jobs} in attesa, {svc.runner.busy} in lavorazione\n"
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
    report = svc.admin.contributors()
    contributions, samples = report.contributions, report.samples
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
    removed = await asyncio.to_thread(services(context).admin.remove_user, user_id)
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
    app.add_handler(command("stats", stats))
    app.add_handler(command("contributors", contributors))
    app.add_handler(command("remove_contributions", remove_contributions_command))
