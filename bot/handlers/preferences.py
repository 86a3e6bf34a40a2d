"""``/impostazioni``: a message with buttons, per chat, that edits itself as options are
chosen — how transcripts come back (text, .txt, .srt, .vtt, text with timestamps),
hashtags on or off, and in groups "transcribe every voice note" and a lock that lets
only the group's administrators change settings."""

from __future__ import annotations

import asyncio
import contextlib

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.handlers.common import answer_press, command, is_private, rate_limited, services
from storage.chat_settings import OUTPUTS, ChatPreferences

PREFIX = "imp:"
OUTPUT_ACTION = "out"
TOGGLES = {"tag": "hashtags", "all": "transcribe_all", "lock": "admins_only"}
GROUP_ONLY_TOGGLES = frozenset({"all", "lock"})
ADMIN_STATUSES = frozenset({ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER})
SELECTED = "✅ "
# Output buttons per row.
OUTPUT_ROWS = (("text", "txt", "timestamps"), ("srt", "vtt"))
# Media kinds "trascrivi tutto" covers in groups.
TRANSCRIBE_ALL_KINDS = ("voice", "video_note")


def _state(on: bool) -> str:
    return messages.SETTINGS_ON if on else messages.SETTINGS_OFF


def settings_text(prefs: ChatPreferences, *, group: bool) -> str:
    lines = [
        messages.SETTINGS_TITLE,
        "",
        messages.SETTINGS_OUTPUT.format(output=messages.OUTPUT_LABELS[prefs.output]),
        messages.SETTINGS_HASHTAGS.format(state=_state(prefs.hashtags)),
    ]
    if group:
        lines.append(messages.SETTINGS_TRANSCRIBE_ALL.format(state=_state(prefs.transcribe_all)))
        lines.append(messages.SETTINGS_ADMINS_ONLY.format(state=_state(prefs.admins_only)))
    return "\n".join([*lines, "", messages.SETTINGS_HINT])


def settings_markup(prefs: ChatPreferences, *, group: bool) -> InlineKeyboardMarkup:
    def output_button(output: str) -> InlineKeyboardButton:
        mark = SELECTED if output == prefs.output else ""
        label = f"{mark}{messages.OUTPUT_LABELS[output]}"
        return InlineKeyboardButton(label, callback_data=f"{PREFIX}{OUTPUT_ACTION}:{output}")

    def toggle(action: str, label: str, on: bool) -> list[InlineKeyboardButton]:
        text = f"{label}: {_state(on)}"
        return [InlineKeyboardButton(text, callback_data=f"{PREFIX}{action}")]

    rows = [[output_button(output) for output in row] for row in OUTPUT_ROWS]
    rows.append(toggle("tag", "Hashtag", prefs.hashtags))
    if group:
        rows.append(toggle("all", "Trascrivi tutto", prefs.transcribe_all))
        rows.append(toggle("lock", "Solo admin", prefs.admins_only))
    return InlineKeyboardMarkup(rows)


def _is_group(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type in (ChatType.GROUP, ChatType.SUPERGROUP)


async def on_settings(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None:
        return
    queue = services(context).runner.queue
    prefs = await asyncio.to_thread(queue.preferences, chat.id)
    group = _is_group(update)
    await message.reply_text(
        settings_text(prefs, group=group),
        reply_markup=settings_markup(prefs, group=group),
        do_quote=not is_private(update),
    )


def _changes(data: str, prefs: ChatPreferences) -> dict[str, object] | None:
    """The settings a button asks to change; None for data this module does not know."""
    action, _, value = data.removeprefix(PREFIX).partition(":")
    if action == OUTPUT_ACTION:
        return {"output": value} if value in OUTPUTS else None
    field = TOGGLES.get(action)
    if field is None:
        return None
    return {field: not getattr(prefs, field)}


async def _is_admin(context: ContextTypes.DEFAULT_TYPE, chat_id: int, user_id: int) -> bool:
    try:
        member = await context.bot.get_chat_member(chat_id, user_id)
    except TelegramError:
        return False
    return member.status in ADMIN_STATUSES


async def on_settings_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query, chat = update.callback_query, update.effective_chat
    if query is None:
        return
    if chat is None or query.data is None:  # a message too old to carry its chat
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    svc = services(context)
    # Each press writes and edits a message: limited, in a bucket of its own (choosing
    # settings must not use up the user's requests).
    wait = svc.limiter.hit((PREFIX, query.from_user.id))
    if wait:
        await answer_press(query, messages.RATE_LIMITED.format(seconds=max(1, round(wait))))
        return
    queue = svc.runner.queue
    prefs = await asyncio.to_thread(queue.preferences, chat.id)
    changes = _changes(query.data, prefs)
    group = _is_group(update)
    if changes is None:
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    action = query.data.removeprefix(PREFIX).partition(":")[0]
    if action in GROUP_ONLY_TOGGLES and not group:
        await answer_press(query, messages.SETTINGS_GROUP_ONLY, show_alert=True)
        return
    # The lock itself is the administrators' to set; with it on, every setting is.
    needs_admin = group and (prefs.admins_only or action == "lock")
    if needs_admin and not await _is_admin(context, chat.id, query.from_user.id):
        await answer_press(query, messages.SETTINGS_ONLY_ADMINS, show_alert=True)
        return
    prefs = await asyncio.to_thread(lambda: queue.set_preferences(chat.id, **changes))
    with contextlib.suppress(BadRequest):  # "not modified": pressed twice
        await query.edit_message_text(
            settings_text(prefs, group=group), reply_markup=settings_markup(prefs, group=group)
        )
    await answer_press(query, messages.SETTINGS_SAVED)


async def transcribes_everything(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Whether this group asked for every voice note to be transcribed."""
    message, chat = update.effective_message, update.effective_chat
    if message is None or chat is None or not _is_group(update):
        return False
    if not any(getattr(message, kind) is not None for kind in TRANSCRIBE_ALL_KINDS):
        return False
    queue = services(context).runner.queue
    prefs = await asyncio.to_thread(queue.preferences, chat.id)
    return prefs.transcribe_all


def register(app: Application) -> None:
    # The panel is the chat's; each press is checked against the person pressing it.
    app.add_handler(command("impostazioni", rate_limited(on_settings, chat_senders=True)))
    app.add_handler(CallbackQueryHandler(on_settings_button, pattern=rf"^{PREFIX}"))
