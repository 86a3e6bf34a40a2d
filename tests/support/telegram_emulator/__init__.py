"""A loopback Telegram Bot API server for end-to-end tests of python-telegram-bot bots.

The emulator is an aiohttp server on 127.0.0.1 (free port) running on its own event loop in a
background thread, so it serves a bot in the test's own event loop (pytest-asyncio) as well as
a bot in a subprocess. Everything public is thread-safe.

The package: ``core`` (server, update queue, webhooks, observation), ``users`` (what users
do), ``methods`` (the Bot API methods), ``records``, ``text`` (entities, HTML), ``wire``
(request parsing), ``constants``.

Point the bot at it::

    with BotApiEmulator() as emu:
        app = (
            ApplicationBuilder()
            .token(emu.token)
            .base_url(emu.api_url)          # "http://127.0.0.1:PORT/bot"
            .base_file_url(emu.file_url)    # "http://127.0.0.1:PORT/file/bot"
            .build()
        )

Life cycle: ``start()`` / ``stop()``, or ``with`` / ``async with``. Attributes: ``api_url``,
``file_url``, ``token``, ``bot_id``, ``bot_username``.

Injecting updates (each returns the created ``Message`` as a dict; message ids count up per
chat, shared by the user's and the bot's messages, as in a real private chat):

- ``send_text(*, user_id, text, chat_id=None, chat_type="private", reply_to=None,
  first_name="Utente", username=None, entities=None)``: ``bot_command`` entities for
  ``/commands``, ``url`` for links (``http(s)://``, ``www.`` and bare ``host.tld/...``),
  ``mention`` for ``@username``, ``hashtag`` for ``#tag``; offsets in UTF-16 units.
  ``entities=[...]`` replaces the automatic ones. ``sender_chat=ID`` (also on
  ``send_voice``) sends it on behalf of a chat, as Telegram shows it: ``sender_chat`` set
  and a placeholder in ``from`` (GroupAnonymousBot when ID is the group itself, an
  anonymous admin; Channel_Bot for a channel; Telegram 777000 with
  ``automatic_forward=True``, a channel post forwarded into its discussion group).
- ``send_voice(*, user_id, data, duration, mime_type="audio/ogg", caption=None, ...)``,
  ``send_audio(..., file_name=None, title=None, performer=None)``,
  ``send_video(..., width=640, height=360)``, ``send_video_note(..., length=240)``,
  ``send_document(..., file_name, mime_type)``: the file's bytes are served to the bot through
  ``getFile`` + download. ``file_size=`` declares a size other than ``len(data)``; over
  20 MB ``getFile`` answers 400 "file is too big", like the real API (``local_dir=``: a
  local Bot API server, whose getFile answers an absolute path there, up to 2000 MB).
  ``send_voice(..., forward_of=file_id)`` forwards a file sent before (same file_id and
  file_unique_id).
- ``topic=THREAD`` on ``send_text`` / ``send_voice`` / ``send_audio`` / ``send_video`` /
  ``send_video_note`` / ``send_document``: the message is written in that forum topic of a
  supergroup (``message_thread_id``, ``is_topic_message``; the chat becomes ``is_forum``).
  A user's reply without ``topic`` stays in the replied-to message's topic.
- ``delete_message(*, chat_id, message_id)``: a user deletes a message (the bot is not told).
- ``send_callback_query(*, user_id, message_id, data, chat_id=None) -> str`` (the query id),
  for inline-keyboard buttons on a message the bot sent.
- ``open_chat(*, user_id, chat_id=None, chat_type="private")``: makes a chat known without an
  update. The bot may only message chats that exist: an unknown user is 403 "bot can't
  initiate conversation with a user", an unknown group 400 "chat not found".
- ``set_member_status(*, chat_id, user_id, status)`` for ``getChatMember`` /
  ``getChatAdministrators`` (default status "member").
- ``remove_bot(*, chat_id, by_user_id, status="kicked"|"left", announce=True)``,
  ``mute_bot(*, chat_id, by_user_id, announce=True)``: the bot's place in a group changes,
  announced by a ``my_chat_member`` update (``announce=False``: the bot never hears it).
  From then on a removed bot gets 403 "bot was kicked from the ... chat" for every call
  there, a muted one 400 "not enough rights to send text messages" for sends, edits and
  chat actions. ``migrate_group(*, chat_id, new_chat_id, user_id, announce=True)``: the
  group becomes a supergroup; both service messages (``migrate_to_chat_id`` in the old chat,
  ``migrate_from_chat_id`` in the new) arrive as updates, and the old id answers every
  call with 400 "group chat was upgraded" and ``parameters.migrate_to_chat_id``.

Observing the bot:

- ``calls``: every API call as ``(method, params)``, params decoded (JSON values parsed, text
  kept raw, uploaded files as ``SentFile``); ``calls_to(method) -> list[dict]``.
- ``messages(chat_id, *, include_deleted=False) -> list[BotMessage]``: the current state of the
  messages the bot sent to that chat, in order (plain text after HTML parsing, the raw text,
  reply target, forum topic, reply markup, document/photo name + bytes, edit history,
  deleted flag). A bot message lands in a topic as on Telegram: the ``message_thread_id``
  it names (400 "message thread not found" unless a user wrote in that topic), else the
  replied-to message's topic if that message still exists, else "General" (``topic=None``).
- ``wait_for(predicate, timeout=30.0)``: sync polling, for subprocess bots;
  ``await async_wait_for(predicate, timeout=30.0)``: for in-process bots. Both return the
  first truthy value of ``predicate()`` or raise ``WaitTimeout``.
- ``fail_next(method, *, error_code, description, retry_after=None)``: the next call of
  ``method`` fails that way (queued; ``retry_after`` makes PTB raise ``RetryAfter``).
- ``webhook_failures``: deliveries to the bot's webhook that did not get a 2xx.

Methods served: getMe, logOut, close, setMyCommands, getMyCommands, deleteMyCommands,
setWebhook, deleteWebhook, getWebhookInfo, getUpdates, sendMessage, editMessageText,
editMessageCaption, editMessageReplyMarkup, deleteMessage, sendChatAction, sendDocument,
sendPhoto, answerCallbackQuery, getFile, setMessageReaction, getChat, getChatMember,
getChatAdministrators; the file download ``GET {file_url}{token}/{file_path}``. Any other
method answers 404 "Not Found: method not found" and is recorded.

Behaviour copied from the real API (python-telegram-bot 22.8 speaks this wire format):

- bodies are form-encoded or multipart (strings raw, everything else JSON) or JSON; replies
  are ``{"ok": true, "result": ...}``; errors carry the HTTP status of ``error_code``;
- a wrong token is 401 "Unauthorized" (404 "Not Found" when malformed);
- ``getUpdates`` long-polls (``timeout``, ``offset`` confirms everything below it,
  ``limit``, ``allowed_updates``) and answers at once when updates are queued; updates stay
  queued until confirmed, so a bot killed before confirming gets them again; a second
  concurrent ``getUpdates`` ends the first with 409 Conflict; while a webhook is set it is 409;
- ``setWebhook`` with a URL switches to webhook delivery (also ``deliver_via_webhook(url,
  secret_token=None)``): updates are POSTed as ``application/json`` with
  ``X-Telegram-Bot-Api-Secret-Token``, in order, retried until the bot answers 2xx;
  ``deleteWebhook`` switches back to getUpdates; ``drop_pending_updates`` is honoured;
- ``parse_mode="HTML"`` is parsed like Telegram (b/strong, i/em, u/ins, s/strike/del,
  tg-spoiler/span class="tg-spoiler", a href, code, pre, blockquote, tg-emoji; only
  ``&lt; &gt; &amp; &quot;`` and numeric entities): bad markup is 400 "can't parse entities";
  Markdown parse modes are stored raw, unchecked;
- texts over 4096 characters (captions over 1024) are 400 "message is too long", empty
  texts 400 "message text is empty", replying to a missing message 400 "message to be
  replied not found" (unless ``allow_sending_without_reply``), editing to identical content
  400 "message is not modified".
"""

from __future__ import annotations

from tests.support.telegram_emulator.chat_changes import ChatChanges
from tests.support.telegram_emulator.core import EmulatorCore
from tests.support.telegram_emulator.methods import BotMethods
from tests.support.telegram_emulator.records import (
    ApiCall,
    BotMessage,
    EmulatorError,
    HtmlParseError,
    SentFile,
    WaitTimeout,
)
from tests.support.telegram_emulator.text import detect_entities, parse_html, utf16_len
from tests.support.telegram_emulator.users import UserActions

__all__ = [
    "ApiCall",
    "BotApiEmulator",
    "BotMessage",
    "EmulatorError",
    "HtmlParseError",
    "SentFile",
    "WaitTimeout",
    "detect_entities",
    "parse_html",
    "utf16_len",
]


class BotApiEmulator(ChatChanges, UserActions, BotMethods, EmulatorCore):
    """A Bot API server on 127.0.0.1 for one bot token. See the package docstring."""
