"""A loopback Telegram Bot API server for end-to-end tests of python-telegram-bot bots.

The emulator is an aiohttp server on 127.0.0.1 (free port) running on its own event loop in a
background thread, so it serves a bot in the test's own event loop (pytest-asyncio) as well as
a bot in a subprocess. Everything public is thread-safe.

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
  ``entities=[...]`` replaces the automatic ones.
- ``send_voice(*, user_id, data, duration, mime_type="audio/ogg", caption=None, ...)``,
  ``send_audio(..., file_name=None, title=None, performer=None)``,
  ``send_video(..., width=640, height=360)``, ``send_video_note(..., length=240)``,
  ``send_document(..., file_name, mime_type)``: the file's bytes are served to the bot through
  ``getFile`` + download. ``file_size=`` declares a size other than ``len(data)``; over
  20 MB ``getFile`` answers 400 "file is too big", like the real API (``local_dir=``: a
  local Bot API server, whose getFile answers an absolute path there, up to 2000 MB).
  ``send_voice(..., forward_of=file_id)`` forwards a file sent before (same file_id and
  file_unique_id).
- ``send_callback_query(*, user_id, message_id, data, chat_id=None) -> str`` (the query id),
  for inline-keyboard buttons on a message the bot sent.
- ``open_chat(*, user_id, chat_id=None, chat_type="private")``: makes a chat known without an
  update. The bot may only message chats that exist: an unknown user is 403 "bot can't
  initiate conversation with a user", an unknown group 400 "chat not found".
- ``set_member_status(*, chat_id, user_id, status)`` for ``getChatMember`` /
  ``getChatAdministrators`` (default status "member").

Observing the bot:

- ``calls``: every API call as ``(method, params)``, params decoded (JSON values parsed, text
  kept raw, uploaded files as ``SentFile``); ``calls_to(method) -> list[dict]``.
- ``messages(chat_id, *, include_deleted=False) -> list[BotMessage]``: the current state of the
  messages the bot sent to that chat, in order (plain text after HTML parsing, the raw text,
  reply target, reply markup, document/photo name + bytes, edit history, deleted flag).
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

import asyncio
import contextlib
import copy
import dataclasses
import itertools
import json
import mimetypes
import re
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

T = TypeVar("T")

LOOPBACK_HOST = "127.0.0.1"
DEFAULT_TOKEN = "123456:TEST-TOKEN"
DEFAULT_BOT_USERNAME = "whisper_it_test_bot"
BOT_FIRST_NAME = "Whisper IT (test)"
GROUP_TITLE = "Gruppo di test"

LOCAL_MAX_DOWNLOAD_BYTES = 2000 * 1024 * 1024  # a local Bot API server's limit
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # the Bot API refuses getFile above this
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_UPDATES_PER_CALL = 100
FIRST_UPDATE_ID = 1000
WAIT_POLL_SECONDS = 0.02
START_TIMEOUT_SECONDS = 10.0
# Long polls are answered (or cancelled) on stop, so shutting down never waits on them.
SHUTDOWN_TIMEOUT_SECONDS = 1.0
WEBHOOK_RETRY_FIRST_DELAY = 0.05
WEBHOOK_RETRY_MAX_DELAY = 1.0
WEBHOOK_REQUEST_TIMEOUT = 10.0
SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Parameters whose form values are plain strings; all other values are JSON (or raw if
# they do not parse, e.g. chat_id="@channel").
RAW_STRING_PARAMS = frozenset(
    {
        "action",
        "business_connection_id",
        "caption",
        "callback_query_id",
        "data",
        "description",
        "emoji",
        "file_id",
        "inline_message_id",
        "ip_address",
        "language_code",
        "message_effect_id",
        "name",
        "parse_mode",
        "performer",
        "query",
        "secret_token",
        "short_description",
        "text",
        "title",
        "url",
    }
)
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
UPDATE_TYPES = frozenset({"message", "edited_message", "callback_query"})

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
GET_UPDATES_WHILE_WEBHOOK = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
GET_UPDATES_TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

_TOKEN_SHAPE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![A-Za-z0-9_@])")
_URL = re.compile(
    r"(?<![\w@/.])(?:https?://[^\s<>\"]+|www\.[^\s<>\"]+"
    r"|(?:[A-Za-z0-9-]+\.)+(?:com|be|it|org|net|io|eu|info|me|tv|app|dev)(?:/[^\s<>\"]*)?)"
    r"(?![\w.-])",
    re.IGNORECASE,
)
_URL_TRAILING_PUNCTUATION = ".,;:!?)]}'\""
_MENTION = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?![A-Za-z0-9_])")
_HASHTAG = re.compile(r"(?<![\w#])#\w+")


class EmulatorError(Exception):
    """Misuse of the emulator by a test."""


class WaitTimeout(EmulatorError, AssertionError):
    """``wait_for`` / ``async_wait_for`` saw no truthy value before the timeout."""


class HtmlParseError(ValueError):
    """Markup that the Bot API would refuse with "can't parse entities"."""


@dataclasses.dataclass(frozen=True)
class SentFile:
    """A file the bot uploaded."""

    name: str
    data: bytes
    mime_type: str


@dataclasses.dataclass(frozen=True)
class BotMessage:
    """Snapshot of one message the bot sent, as it is now."""

    message_id: int
    chat_id: int
    method: str
    date: int
    text: str | None = None
    raw_text: str | None = None
    caption: str | None = None
    parse_mode: str | None = None
    entities: tuple[dict[str, Any], ...] = ()
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    document: SentFile | None = None
    photo: SentFile | None = None
    edit_history: tuple[str, ...] = ()
    edited: bool = False
    deleted: bool = False

    @property
    def content(self) -> str:
        """The text, or the caption of a media message ("" when neither)."""
        return self.text if self.text is not None else (self.caption or "")


@dataclasses.dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]


class _ApiError(Exception):
    def __init__(self, error_code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclasses.dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    file_size: int


@dataclasses.dataclass
class _Record:
    """One message in a chat, mutable: edits change it in place."""

    message: dict[str, Any]
    from_bot: bool
    method: str = ""
    raw_text: str | None = None
    parse_mode: str | None = None
    document: SentFile | None = None
    photo: SentFile | None = None
    edit_history: list[str] = dataclasses.field(default_factory=list)
    edited: bool = False
    deleted: bool = False


@dataclasses.dataclass
class _Chat:
    chat: dict[str, Any]
    next_message_id: int = 1
    records: dict[int, _Record] = dataclasses.field(default_factory=dict)
    members: dict[int, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Webhook:
    url: str
    secret_token: str | None


# ---------------------------------------------------------------- text helpers


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def detect_entities(text: str) -> list[dict[str, Any]]:
    """The entities Telegram's clients and server attach to a user's plain text."""
    found: list[tuple[int, int, dict[str, Any]]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, kind: str) -> None:
        if any(start < t_end and t_start < end for t_start, t_end in taken):
            return
        taken.append((start, end))
        offset = utf16_len(text[:start])
        entity = {"type": kind, "offset": offset, "length": utf16_len(text[start:end])}
        found.append((start, end, entity))

    for match in _COMMAND.finditer(text):
        add(match.start(), match.end(), "bot_command")
    for match in _URL.finditer(text):
        end = match.end()
        while end > match.start() and text[end - 1] in _URL_TRAILING_PUNCTUATION:
            end -= 1
        add(match.start(), end, "url")
    for match in _MENTION.finditer(text):
        add(match.start(), match.end(), "mention")
    for match in _HASHTAG.finditer(text):
        add(match.start(), match.end(), "hashtag")
    return [entity for _, _, entity in sorted(found, key=lambda item: item[0])]


_HTML_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_ATTRIBUTE = re.compile(
    r"""([A-Za-z][A-Za-z0-9_-]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?"""
)
_HTML_CHAR_REFERENCE = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z]{1,8});")


def _decode_html_entities(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith(("#x", "#X")):
            return chr(int(name[2:], 16))
        if name.startswith("#"):
            return chr(int(name[1:]))
        # Telegram knows only four named entities and keeps any other one as typed.
        return _HTML_NAMED_ENTITIES.get(name, match.group(0))

    return _HTML_CHAR_REFERENCE.sub(replace, text)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and entities for ``parse_mode="HTML"``, refusing what Telegram refuses."""
    plain: list[str] = []
    length = 0  # UTF-16 units written so far
    stack: list[tuple[str, int, dict[str, str]]] = []
    entities: list[dict[str, Any]] = []
    position = 0

    def byte_offset(index: int) -> int:
        return len(source[:index].encode())

    while position < len(source):
        tag_start = source.find("<", position)
        chunk = source[position:] if tag_start == -1 else source[position:tag_start]
        decoded = _decode_html_entities(chunk)
        plain.append(decoded)
        length += utf16_len(decoded)
        if tag_start == -1:
            break
        tag_end = source.find(">", tag_start)
        if tag_end == -1:
            raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(tag_start)}")
        inner = source[tag_start + 1 : tag_end]
        position = tag_end + 1
        if inner.startswith("/"):
            name = inner[1:].strip().lower()
            if not stack:
                raise HtmlParseError(f"Unexpected end tag at byte offset {byte_offset(tag_start)}")
            open_name, open_offset, attributes = stack.pop()
            if name != open_name:
                raise HtmlParseError(
                    f"Unmatched end tag at byte offset {byte_offset(tag_start)}, "
                    f'expected "</{open_name}>", found "</{name}>"'
                )
            _close_html_entity(entities, stack, open_name, open_offset, length, attributes)
            continue
        name_match = re.match(r"[^\s/]*", inner)
        name = name_match.group(0).lower() if name_match else ""
        if name not in _HTML_ENTITY_TYPES:
            raise HtmlParseError(
                f'Unsupported start tag "{name}" at byte offset {byte_offset(tag_start)}'
            )
        attributes = {
            match.group(1).lower(): _decode_html_entities(
                next((group for group in match.groups()[1:] if group is not None), "")
            )
            for match in _HTML_ATTRIBUTE.finditer(inner[len(name) :])
        }
        if name == "span" and attributes.get("class") != "tg-spoiler":
            raise HtmlParseError('Tag "span" must have class "tg-spoiler"')
        stack.append((name, length, attributes))
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1][0]}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return "".join(plain), entities


def _close_html_entity(
    entities: list[dict[str, Any]],
    stack: list[tuple[str, int, dict[str, str]]],
    name: str,
    offset: int,
    end: int,
    attributes: dict[str, str],
) -> None:
    if end == offset:
        return  # Telegram drops empty entities
    kind = _HTML_ENTITY_TYPES[name]
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": end - offset}
    if kind == "text_link":
        url = attributes.get("href")
        if not url:
            return
        entity["url"] = url
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = attributes.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in attributes:
        entity["type"] = "expandable_blockquote"
    elif kind == "code" and stack and stack[-1][0] == "pre":
        # <pre><code class="language-x"> is one pre entity carrying the language.
        language = attributes.get("class", "")
        if language.startswith("language-"):
            stack[-1][2]["language"] = language.removeprefix("language-")
        return
    elif kind == "pre" and attributes.get("language"):
        entity["language"] = attributes["language"]
    entities.append(entity)


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    return 1, 1


# ---------------------------------------------------------------- the emulator


class BotApiEmulator:
    """A Bot API server on 127.0.0.1 for one bot token. See the module docstring."""

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_username: str = DEFAULT_BOT_USERNAME,
        local_dir: Path | None = None,
    ) -> None:
        # A local Bot API server (``telegram-bot-api --local``): getFile writes the file
        # under ``local_dir`` and answers its absolute path; files up to 2000 MB.
        self.local_dir = local_dir
        if not _TOKEN_SHAPE.match(token):
            raise EmulatorError(f"token must look like '<digits>:<secret>', got {token!r}")
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_username = bot_username
        self._lock = threading.RLock()
        self._calls: list[ApiCall] = []
        self._chats: dict[int, _Chat] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._file_counter = itertools.count(1)
        self._update_ids = itertools.count(FIRST_UPDATE_ID)
        self._callback_ids = itertools.count(1)
        self._pending: list[dict[str, Any]] = []
        self._allowed_updates: list[str] = []
        self._webhook: _Webhook | None = None
        self._webhook_failures: list[str] = []
        self._commands: dict[str, list[dict[str, Any]]] = {}
        self._failures: dict[str, deque[_ApiError]] = defaultdict(deque)
        self._poll_generation = 0
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._update_event: asyncio.Event | None = None
        self._webhook_queue: asyncio.Queue[dict[str, Any]] | None = None
        self._webhook_task: asyncio.Task[None] | None = None
        self._port: int | None = None

    # ------------------------------------------------------------ life cycle

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise EmulatorError("the emulator is not running: call start() first")
        return f"http://{LOOPBACK_HOST}:{self._port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/bot"

    @property
    def file_url(self) -> str:
        return f"{self.base_url}/file/bot"

    def start(self) -> None:
        if self._thread is not None:
            raise EmulatorError("the emulator is already running")
        self._closing = False
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="telegram-emulator", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(
            START_TIMEOUT_SECONDS + SHUTDOWN_TIMEOUT_SECONDS
        )
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT_SECONDS)
        loop.close()
        self._loop = self._thread = None
        self._port = None

    def __enter__(self) -> BotApiEmulator:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> BotApiEmulator:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)

    async def _serve(self) -> None:
        self._update_event = asyncio.Event()
        self._webhook_queue = asyncio.Queue()
        app = web.Application(client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_download)
        # handler_cancellation: a bot that hangs up (shutdown, SIGKILL) ends its long poll.
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
            access_log=None,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, LOOPBACK_HOST, 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._webhook_task = asyncio.create_task(self._deliver_webhooks())

    async def _shutdown(self) -> None:
        self._closing = True
        assert self._update_event is not None
        self._update_event.set()  # answer waiting long polls now
        if self._webhook_task is not None:
            self._webhook_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._webhook_task
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ observing

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        with self._lock:
            return [(call.method, copy.deepcopy(call.params)) for call in self._calls]

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        wanted = method.lower()
        with self._lock:
            return [
                copy.deepcopy(call.params) for call in self._calls if call.method.lower() == wanted
            ]

    def messages(self, chat_id: int, *, include_deleted: bool = False) -> list[BotMessage]:
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                return []
            return [
                self._snapshot(chat_id, record)
                for _, record in sorted(chat.records.items())
                if record.from_bot and (include_deleted or not record.deleted)
            ]

    @property
    def webhook_failures(self) -> list[str]:
        with self._lock:
            return list(self._webhook_failures)

    @property
    def pending_update_count(self) -> int:
        with self._lock:
            return len(self._pending)

    @property
    def commands(self) -> list[dict[str, Any]]:
        """The bot's commands for the default scope, as set by setMyCommands."""
        with self._lock:
            return copy.deepcopy(self._commands.get("", []))

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise WaitTimeout(self._timeout_message(timeout))
            time.sleep(WAIT_POLL_SECONDS)

    async def async_wait_for(self, predicate: Callable[[], T], timeout: float = 30.0) -> T:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise WaitTimeout(self._timeout_message(timeout))
            await asyncio.sleep(WAIT_POLL_SECONDS)

    def _timeout_message(self, timeout: float) -> str:
        recent = [method for method, _ in self.calls[-15:]]
        return f"condition not met within {timeout:.1f} s; last API calls: {recent}"

    def fail_next(
        self, method: str, *, error_code: int, description: str, retry_after: int | None = None
    ) -> None:
        with self._lock:
            self._failures[method.lower()].append(_ApiError(error_code, description, retry_after))

    # ------------------------------------------------------------ injecting

    def open_chat(
        self, *, user_id: int, chat_id: int | None = None, chat_type: str = "private"
    ) -> int:
        """Make a chat known (as if the user had started the bot); returns its id."""
        with self._lock:
            chat = self._chat_for(user_id, chat_id, chat_type, self._user(user_id, "Utente"))
            return int(chat.chat["id"])

    def set_member_status(self, *, chat_id: int, user_id: int, status: str) -> None:
        """Status for getChatMember: creator, administrator, member, restricted, left, kicked."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None:
                raise EmulatorError(f"unknown chat {chat_id}: open_chat() or send_*() first")
            chat.members[user_id] = status

    def send_text(
        self,
        *,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"text": text}
        found = detect_entities(text) if entities is None else entities
        if found:
            fields["entities"] = found
        return self._inject_message(
            user_id, chat_id, chat_type, reply_to, first_name, username, fields
        )

    def send_voice(
        self,
        *,
        user_id: int,
        data: bytes,
        duration: int,
        mime_type: str = "audio/ogg",
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        forward_of: str | None = None,
    ) -> dict[str, Any]:
        """A voice note; ``forward_of`` (a file_id sent before) forwards that same file,
        which keeps its file_id and file_unique_id as on Telegram (``data`` is ignored)."""
        if forward_of is not None:
            with self._lock:
                stored = self._files[forward_of]
        else:
            stored = self._store_file(data, "voice", ".oga", file_size)
        media = self._media_fields(stored) | {"duration": duration, "mime_type": mime_type}
        return self._inject_media(
            "voice", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username
        )

    def send_audio(
        self,
        *,
        user_id: int,
        data: bytes,
        duration: int,
        mime_type: str = "audio/mpeg",
        file_name: str | None = None,
        title: str | None = None,
        performer: str | None = None,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> dict[str, Any]:
        suffix = _suffix(file_name, mime_type, ".mp3")
        stored = self._store_file(data, "music", suffix, file_size)
        media = self._media_fields(stored) | {"duration": duration, "mime_type": mime_type}
        media |= _present(file_name=file_name, title=title, performer=performer)
        return self._inject_media(
            "audio", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username
        )

    def send_video(
        self,
        *,
        user_id: int,
        data: bytes,
        duration: int,
        mime_type: str = "video/mp4",
        file_name: str | None = None,
        width: int = 640,
        height: int = 360,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> dict[str, Any]:
        stored = self._store_file(data, "videos", _suffix(file_name, mime_type, ".mp4"), file_size)
        media = self._media_fields(stored) | {
            "duration": duration,
            "mime_type": mime_type,
            "width": width,
            "height": height,
        }
        media |= _present(file_name=file_name)
        return self._inject_media(
            "video", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username
        )

    def send_video_note(
        self,
        *,
        user_id: int,
        data: bytes,
        duration: int,
        length: int = 240,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> dict[str, Any]:
        stored = self._store_file(data, "video_notes", ".mp4", file_size)
        media = self._media_fields(stored) | {"duration": duration, "length": length}
        return self._inject_media(
            "video_note", media, None, user_id, chat_id, chat_type, reply_to, first_name, username
        )

    def send_document(
        self,
        *,
        user_id: int,
        data: bytes,
        file_name: str,
        mime_type: str,
        chat_id: int | None = None,
        chat_type: str = "private",
        reply_to: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> dict[str, Any]:
        suffix = _suffix(file_name, mime_type, "")
        stored = self._store_file(data, "documents", suffix, file_size)
        media = self._media_fields(stored) | {"file_name": file_name, "mime_type": mime_type}
        return self._inject_media(
            "document", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username
        )

    def send_callback_query(
        self,
        *,
        user_id: int,
        message_id: int,
        data: str,
        chat_id: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> str:
        target_chat = user_id if chat_id is None else chat_id
        with self._lock:
            chat = self._chats.get(target_chat)
            record = chat.records.get(message_id) if chat else None
            if record is None or record.deleted:
                raise EmulatorError(f"no message {message_id} in chat {target_chat}")
            query_id = str(next(self._callback_ids))
            update = {
                "callback_query": {
                    "id": query_id,
                    "from": self._user(user_id, first_name, username),
                    "chat_instance": f"instance-{target_chat}",
                    "message": copy.deepcopy(record.message),
                    "data": data,
                }
            }
            self._enqueue(update)
        return query_id

    def deliver_via_webhook(self, url: str, secret_token: str | None = None) -> None:
        """POST updates to ``url`` from now on (as after setWebhook), queued ones first."""
        with self._lock:
            self._set_webhook(_Webhook(url, secret_token), drop_pending=False)

    # ------------------------------------------------------------ state (hold the lock)

    def _user(self, user_id: int, first_name: str, username: str | None = None) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": "it",
        }
        if username:
            user["username"] = username
        return user

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": BOT_FIRST_NAME,
            "username": self.bot_username,
        }

    def _chat_for(
        self, user_id: int, chat_id: int | None, chat_type: str, user: dict[str, Any]
    ) -> _Chat:
        if chat_type == "private":
            if chat_id not in (None, user_id):
                raise EmulatorError("a private chat's id is the user's id")
            chat_id = user_id
            description = {"id": user_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                description["username"] = user["username"]
        elif chat_type in ("group", "supergroup", "channel"):
            if chat_id is None:
                raise EmulatorError(f"a {chat_type} needs an explicit chat_id")
            description = {"id": chat_id, "type": chat_type, "title": GROUP_TITLE}
        else:
            raise EmulatorError(f"unknown chat_type {chat_type!r}")
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(chat=description)
        chat.members.setdefault(user_id, "member")
        return chat

    def _inject_message(
        self,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        reply_to: int | None,
        first_name: str,
        username: str | None,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        with self._lock:
            user = self._user(user_id, first_name, username)
            chat = self._chat_for(user_id, chat_id, chat_type, user)
            message = self._new_message(chat, user, reply_to, strict=False)
            message.update(fields)
            chat.records[message["message_id"]] = _Record(message=message, from_bot=False)
            self._enqueue({"message": copy.deepcopy(message)})
            return copy.deepcopy(message)

    def _inject_media(
        self,
        kind: str,
        media: dict[str, Any],
        caption: str | None,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        reply_to: int | None,
        first_name: str,
        username: str | None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {kind: media}
        if caption is not None:
            fields["caption"] = caption
            if found := detect_entities(caption):
                fields["caption_entities"] = found
        return self._inject_message(
            user_id, chat_id, chat_type, reply_to, first_name, username, fields
        )

    def _new_message(
        self, chat: _Chat, sender: dict[str, Any], reply_to: int | None, *, strict: bool
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": chat.next_message_id,
            "date": int(time.time()),
            "chat": copy.deepcopy(chat.chat),
            "from": copy.deepcopy(sender),
        }
        if reply_to is not None:
            target = chat.records.get(reply_to)
            if target is None or target.deleted:
                if strict:
                    raise _ApiError(400, "Bad Request: message to be replied not found")
                raise EmulatorError(f"no message {reply_to} to reply to in this chat")
            replied = copy.deepcopy(target.message)
            replied.pop("reply_to_message", None)  # Telegram nests one level only
            message["reply_to_message"] = replied
        chat.next_message_id += 1
        return message

    def _subscribed(self, update: dict[str, Any]) -> bool:
        kind = next(key for key in update if key != "update_id")
        return kind in (set(self._allowed_updates) or UPDATE_TYPES)

    def _enqueue(self, update_body: dict[str, Any]) -> None:
        update = {"update_id": next(self._update_ids), **update_body}
        if self._webhook is not None:
            if not self._subscribed(update):
                return
            self._schedule_delivery(update)
        else:
            self._pending.append(update)
            self._wake_pollers()

    def _wake_pollers(self) -> None:
        if self._loop is not None and self._update_event is not None:
            self._loop.call_soon_threadsafe(self._update_event.set)

    def _schedule_delivery(self, update: dict[str, Any]) -> None:
        if self._loop is None or self._webhook_queue is None:
            raise EmulatorError("the emulator is not running: call start() first")
        self._loop.call_soon_threadsafe(self._webhook_queue.put_nowait, update)

    def _set_webhook(self, webhook: _Webhook | None, *, drop_pending: bool) -> None:
        if drop_pending:
            self._pending.clear()
        self._webhook = webhook
        if webhook is not None:
            pending, self._pending = self._pending, []
            for update in pending:
                self._schedule_delivery(update)
        self._wake_pollers()  # a waiting getUpdates now answers 409

    def _store_file(
        self, data: bytes, folder: str, suffix: str, declared_size: int | None
    ) -> _StoredFile:
        with self._lock:
            number = next(self._file_counter)
            stored = _StoredFile(
                file_id=f"BQACAgQAAx{number:08d}",
                file_unique_id=f"AgAD{number:06d}",
                file_path=f"{folder}/file_{number}{suffix}",
                data=bytes(data),
                file_size=len(data) if declared_size is None else declared_size,
            )
            self._files[stored.file_id] = stored
            self._files_by_path[stored.file_path] = stored
            return stored

    @staticmethod
    def _media_fields(stored: _StoredFile) -> dict[str, Any]:
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }

    def _snapshot(self, chat_id: int, record: _Record) -> BotMessage:
        message = record.message
        reply = message.get("reply_to_message")
        return BotMessage(
            message_id=message["message_id"],
            chat_id=chat_id,
            method=record.method,
            date=message["date"],
            text=message.get("text"),
            raw_text=record.raw_text,
            caption=message.get("caption"),
            parse_mode=record.parse_mode,
            entities=tuple(
                copy.deepcopy(message.get("entities") or message.get("caption_entities") or [])
            ),
            reply_to=reply["message_id"] if reply else None,
            reply_markup=copy.deepcopy(message.get("reply_markup")),
            document=record.document,
            photo=record.photo,
            edit_history=tuple(record.edit_history),
            edited=record.edited,
            deleted=record.deleted,
        )

    # ------------------------------------------------------------ HTTP

    async def _handle_download(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
            )
        with self._lock:
            stored = self._files_by_path.get(request.match_info["file_path"])
        if stored is None:
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Not Found: file not found"},
                status=404,
            )
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        if token != self.token:
            error = (
                _ApiError(401, "Unauthorized")
                if _TOKEN_SHAPE.match(token)
                else _ApiError(404, "Not Found")
            )
            return web.json_response(error.payload(), status=error.error_code)
        method = request.match_info["method"]
        try:
            params = await _read_params(request)
        except (ValueError, aiohttp.ContentTypeError) as exc:
            error = _ApiError(400, f"Bad Request: can't parse request body: {exc}")
            return web.json_response(error.payload(), status=400)
        with self._lock:
            self._calls.append(ApiCall(method, params))
            injected = self._failures.get(method.lower())
            failure = injected.popleft() if injected else None
        try:
            if failure is not None:
                raise failure
            handler = self._handlers().get(method.lower())
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            result = await handler(params)
        except _ApiError as error:
            return web.json_response(error.payload(), status=error.error_code)
        return web.json_response({"ok": True, "result": result})

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        return {
            "getme": self._get_me,
            "logout": self._true,
            "close": self._true,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "setwebhook": self._set_webhook_method,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "getupdates": self._get_updates,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagecaption": self._edit_message_caption,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "deletemessage": self._delete_message,
            "sendchataction": self._send_chat_action,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
            "answercallbackquery": self._true,
            "getfile": self._get_file,
            "setmessagereaction": self._set_message_reaction,
            "getchat": self._get_chat,
            "getchatmember": self._get_chat_member,
            "getchatadministrators": self._get_chat_administrators,
        }

    # ------------------------------------------------------------ methods

    async def _true(self, params: dict[str, Any]) -> bool:
        return True

    async def _get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @staticmethod
    def _scope_key(params: dict[str, Any]) -> str:
        scope = params.get("scope")
        language = params.get("language_code") or ""
        if not scope or scope == {"type": "default"}:
            return language
        return json.dumps(scope, sort_keys=True) + language

    async def _set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _ApiError(400, 'Bad Request: parameter "commands" is required')
        for command in commands:
            name = command.get("command", "")
            if not re.fullmatch(r"[a-z0-9_]{1,32}", name) or not command.get("description"):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        with self._lock:
            self._commands[self._scope_key(params)] = commands
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._commands.get(self._scope_key(params), []))

    async def _delete_my_commands(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self._commands.pop(self._scope_key(params), None)
        return True

    async def _set_webhook_method(self, params: dict[str, Any]) -> bool:
        url = params.get("url") or ""
        with self._lock:
            if params.get("allowed_updates") is not None:
                self._allowed_updates = list(params["allowed_updates"])
            webhook = _Webhook(url, params.get("secret_token")) if url else None
            self._set_webhook(webhook, drop_pending=bool(params.get("drop_pending_updates")))
        return True

    async def _delete_webhook(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self._set_webhook(None, drop_pending=bool(params.get("drop_pending_updates")))
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            info: dict[str, Any] = {
                "url": self._webhook.url if self._webhook else "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
            return info

    async def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._loop is not None and self._update_event is not None
        offset = _optional_int(params, "offset")
        limit = min(max(_optional_int(params, "limit") or MAX_UPDATES_PER_CALL, 1), 100)
        timeout = float(params.get("timeout") or 0)
        with self._lock:
            self._poll_generation += 1
            generation = self._poll_generation
            if params.get("allowed_updates") is not None:
                self._allowed_updates = list(params["allowed_updates"])
        self._update_event.set()  # an earlier long poll answers 409, as on the real server
        deadline = self._loop.time() + timeout
        while True:
            with self._lock:
                if self._webhook is not None:
                    raise _ApiError(409, GET_UPDATES_WHILE_WEBHOOK)
                if generation != self._poll_generation:
                    raise _ApiError(409, GET_UPDATES_TERMINATED)
                batch = self._take_updates(offset, limit)
            remaining = deadline - self._loop.time()
            if batch or self._closing or remaining <= 0:
                return batch
            self._update_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_event.wait(), remaining)

    def _take_updates(self, offset: int | None, limit: int) -> list[dict[str, Any]]:
        if offset is not None and offset < 0:
            self._pending = self._pending[offset:]
        elif offset is not None:
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        # Updates of types the bot did not subscribe to are never delivered.
        self._pending = [u for u in self._pending if self._subscribed(u)]
        return copy.deepcopy(self._pending[:limit])

    def _known_chat(self, params: dict[str, Any]) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _ApiError(400, "Bad Request: chat_id is empty")
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            if isinstance(chat_id, int) and chat_id > 0:
                raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
            raise _ApiError(400, "Bad Request: chat not found")
        return chat

    def _reply_target(self, params: dict[str, Any], chat: _Chat) -> int | None:
        reply = params.get("reply_parameters")
        if isinstance(reply, dict):
            target = reply.get("message_id")
            tolerant = bool(reply.get("allow_sending_without_reply"))
        else:
            target = params.get("reply_to_message_id")
            tolerant = bool(params.get("allow_sending_without_reply"))
        if target is None:
            return None
        record = chat.records.get(int(target))
        if (record is None or record.deleted) and tolerant:
            return None
        return int(target)

    def _bot_send(
        self,
        params: dict[str, Any],
        method: str,
        fields: dict[str, Any],
        record_fields: dict[str, Any],
    ) -> dict[str, Any]:
        with self._lock:
            chat = self._known_chat(params)
            reply_to = self._reply_target(params, chat)
            message = self._new_message(chat, self._bot_user(), reply_to, strict=True)
            message.update(fields)
            markup = params.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                message["reply_markup"] = markup
            chat.records[message["message_id"]] = _Record(
                message=message, from_bot=True, method=method, **record_fields
            )
            return copy.deepcopy(message)

    async def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("text")
        parse_mode = params.get("parse_mode")
        text, entities = _formatted(raw, parse_mode, params.get("entities"))
        _check_length(text, MAX_TEXT_LENGTH, "message text is empty", "message is too long")
        fields: dict[str, Any] = {"text": text}
        if entities:
            fields["entities"] = entities
        return self._bot_send(
            params, "sendMessage", fields, {"raw_text": raw, "parse_mode": parse_mode}
        )

    async def _send_document(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._uploaded_file(params, "document")
        stored = self._store_file(
            sent.data, "documents", _suffix(sent.name, sent.mime_type, ""), None
        )
        media = self._media_fields(stored) | {"file_name": sent.name, "mime_type": sent.mime_type}
        fields = {"document": media} | self._caption_fields(params)
        return self._bot_send(
            params,
            "sendDocument",
            fields,
            {
                "document": sent,
                "raw_text": params.get("caption"),
                "parse_mode": params.get("parse_mode"),
            },
        )

    async def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = self._uploaded_file(params, "photo")
        stored = self._store_file(sent.data, "photos", ".jpg", None)
        width, height = _png_size(sent.data)
        media = self._media_fields(stored) | {"width": width, "height": height}
        fields = {"photo": [media]} | self._caption_fields(params)
        return self._bot_send(
            params,
            "sendPhoto",
            fields,
            {
                "photo": sent,
                "raw_text": params.get("caption"),
                "parse_mode": params.get("parse_mode"),
            },
        )

    def _caption_fields(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("caption")
        if raw is None:
            return {}
        caption, entities = _formatted(
            raw, params.get("parse_mode"), params.get("caption_entities")
        )
        if len(caption) > MAX_CAPTION_LENGTH:
            raise _ApiError(400, "Bad Request: message caption is too long")
        fields: dict[str, Any] = {"caption": caption}
        if entities:
            fields["caption_entities"] = entities
        return fields

    def _uploaded_file(self, params: dict[str, Any], name: str) -> SentFile:
        value = params.get(name)
        if isinstance(value, str) and value.startswith("attach://"):
            value = params.get(value.removeprefix("attach://"))
        if isinstance(value, SentFile):
            return value
        if isinstance(value, str):
            with self._lock:
                stored = self._files.get(value)
            if stored is not None:
                return SentFile(
                    name=stored.file_path.rsplit("/", 1)[-1],
                    data=stored.data,
                    mime_type=mimetypes.guess_type(stored.file_path)[0]
                    or "application/octet-stream",
                )
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        raise _ApiError(400, f"Bad Request: there is no {name} in the request")

    def _editable(self, params: dict[str, Any]) -> _Record:
        if params.get("inline_message_id"):
            raise _ApiError(400, "Bad Request: inline messages are not supported by the emulator")
        chat = self._known_chat(params)
        message_id = params.get("message_id")
        record = chat.records.get(message_id) if isinstance(message_id, int) else None
        if record is None or record.deleted:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if not record.from_bot:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return record

    def _apply_edit(
        self, record: _Record, fields: dict[str, Any], markup: Any, raw: str | None
    ) -> dict[str, Any]:
        message = record.message
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        current = {key: message.get(key) for key in fields}
        if current == fields and message.get("reply_markup") == new_markup:
            raise _ApiError(400, NOT_MODIFIED)
        previous_text = message.get("text", message.get("caption"))
        if "text" in fields or "caption" in fields:
            if previous_text is not None and previous_text != fields.get(
                "text", fields.get("caption")
            ):
                record.edit_history.append(previous_text)
            record.raw_text = raw
        for key, value in fields.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        if new_markup is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = new_markup
        message["edit_date"] = int(time.time())
        record.edited = True
        return copy.deepcopy(message)

    async def _edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("text")
        text, entities = _formatted(raw, params.get("parse_mode"), params.get("entities"))
        _check_length(text, MAX_TEXT_LENGTH, "message text is empty", "message is too long")
        with self._lock:
            record = self._editable(params)
            if "text" not in record.message:
                raise _ApiError(400, "Bad Request: there is no text in the message to edit")
            record.parse_mode = params.get("parse_mode")
            fields = {"text": text, "entities": entities or None}
            return self._apply_edit(record, fields, params.get("reply_markup"), raw)

    async def _edit_message_caption(self, params: dict[str, Any]) -> dict[str, Any]:
        raw = params.get("caption")
        with self._lock:
            record = self._editable(params)
            if "text" in record.message:
                raise _ApiError(400, "Bad Request: there is no caption in the message to edit")
            fields = self._caption_fields(params) or {"caption": None}
            fields.setdefault("caption_entities", None)
            return self._apply_edit(record, fields, params.get("reply_markup"), raw)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = self._editable(params)
            return self._apply_edit(record, {}, params.get("reply_markup"), record.raw_text)

    async def _delete_message(self, params: dict[str, Any]) -> bool:
        with self._lock:
            chat = self._known_chat(params)
            message_id = params.get("message_id")
            record = chat.records.get(message_id) if isinstance(message_id, int) else None
            if record is None or record.deleted:
                raise _ApiError(400, "Bad Request: message to delete not found")
            record.deleted = True
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self._known_chat(params)
        if params.get("action") not in CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    async def _set_message_reaction(self, params: dict[str, Any]) -> bool:
        with self._lock:
            chat = self._known_chat(params)
            if params.get("message_id") not in chat.records:
                raise _ApiError(400, "Bad Request: message to react not found")
        return True

    async def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            stored = self._files.get(params.get("file_id") or "")
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        limit = MAX_DOWNLOAD_BYTES if self.local_dir is None else LOCAL_MAX_DOWNLOAD_BYTES
        if stored.file_size > limit:
            raise _ApiError(400, "Bad Request: file is too big")
        file_path = stored.file_path
        if self.local_dir is not None:
            local = self.local_dir / stored.file_path
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(stored.data)
            file_path = str(local.resolve())
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": file_path,
        }

    async def _get_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            chat = self._known_chat(params)
            return copy.deepcopy(chat.chat) | {"accent_color_id": 0, "max_reaction_count": 11}

    def _member(self, chat: _Chat, user_id: int) -> dict[str, Any]:
        status = chat.members.get(user_id, "left")
        member: dict[str, Any] = {"status": status, "user": self._user(user_id, "Utente")}
        if status == "administrator":
            member |= {
                "can_be_edited": False,
                "is_anonymous": False,
                "can_manage_chat": True,
                "can_delete_messages": True,
                "can_manage_video_chats": True,
                "can_restrict_members": True,
                "can_promote_members": False,
                "can_change_info": True,
                "can_invite_users": True,
                "can_post_stories": False,
                "can_edit_stories": False,
                "can_delete_stories": False,
            }
        elif status == "creator":
            member["is_anonymous"] = False
        elif status == "restricted":
            raise _ApiError(400, "Bad Request: restricted members are not emulated")
        elif status == "kicked":
            member["until_date"] = 0
        return member

    async def _get_chat_member(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            chat = self._known_chat(params)
            user_id = params.get("user_id")
            if not isinstance(user_id, int):
                raise _ApiError(400, "Bad Request: user_id is empty")
            return self._member(chat, user_id)

    async def _get_chat_administrators(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            chat = self._known_chat(params)
            return [
                self._member(chat, user_id)
                for user_id, status in chat.members.items()
                if status in ("creator", "administrator")
            ]

    # ------------------------------------------------------------ webhook delivery

    async def _deliver_webhooks(self) -> None:
        assert self._webhook_queue is not None
        timeout = aiohttp.ClientTimeout(total=WEBHOOK_REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                update = await self._webhook_queue.get()
                await self._deliver_one(session, update)

    async def _deliver_one(self, session: aiohttp.ClientSession, update: dict[str, Any]) -> None:
        delay = WEBHOOK_RETRY_FIRST_DELAY
        while True:
            with self._lock:
                webhook = self._webhook
                if webhook is None:  # deleteWebhook came first: back to getUpdates
                    self._pending.append(update)
                    self._pending.sort(key=lambda u: u["update_id"])
                    self._wake_pollers()
                    return
            headers = {"Content-Type": "application/json"}
            if webhook.secret_token:
                headers[SECRET_TOKEN_HEADER] = webhook.secret_token
            try:
                async with session.post(
                    webhook.url, data=json.dumps(update).encode(), headers=headers
                ) as response:
                    if 200 <= response.status < 300:
                        return
                    failure = f"update {update['update_id']}: HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = f"update {update['update_id']}: {exc!r}"
            with self._lock:
                self._webhook_failures.append(failure)
            await asyncio.sleep(delay)
            delay = min(delay * 2, WEBHOOK_RETRY_MAX_DELAY)


# ---------------------------------------------------------------- request parsing


async def _read_params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in request.query.items():
        params[key] = _decode_value(key, value)
    if request.method != "POST" or not request.body_exists:
        return params
    if request.content_type == "application/json":
        body = await request.json()
        if not isinstance(body, dict):
            raise ValueError("a JSON body must be an object")
        params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, web.FileField):
            params[key] = SentFile(
                name=value.filename,
                data=value.file.read(),
                mime_type=value.content_type or "application/octet-stream",
            )
        else:
            params[key] = _decode_value(key, value if isinstance(value, str) else value.decode())
    return params


def _decode_value(key: str, value: str) -> Any:
    if key in RAW_STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _optional_int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _ApiError(400, f"Bad Request: wrong parameter {name}") from None


def _formatted(
    raw: Any, parse_mode: str | None, explicit_entities: Any
) -> tuple[str, list[dict[str, Any]]]:
    if raw is None:
        return "", []
    text = str(raw)
    if parse_mode and parse_mode.upper() == "HTML":
        try:
            return parse_html(text)
        except HtmlParseError as exc:
            raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
    if isinstance(explicit_entities, list):
        return text, explicit_entities
    return text, []


def _check_length(text: str, limit: int, empty: str, too_long: str) -> None:
    if not text.strip():
        raise _ApiError(400, f"Bad Request: {empty}")
    if len(text) > limit:
        raise _ApiError(400, f"Bad Request: {too_long}")


def _suffix(file_name: str | None, mime_type: str, default: str) -> str:
    if file_name and "." in file_name:
        return "." + file_name.rsplit(".", 1)[-1]
    return mimetypes.guess_extension(mime_type) or default


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}
