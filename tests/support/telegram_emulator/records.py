"""What the emulator keeps: the bot's messages, files, chats, calls and errors."""

from __future__ import annotations

import dataclasses
from typing import Any


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
    # The forum topic it is in (its message_thread_id); None: not in a topic ("General").
    topic: int | None = None
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
    topics: set[int] = dataclasses.field(default_factory=set)  # a forum's, once used


@dataclasses.dataclass(frozen=True)
class _Webhook:
    url: str
    secret_token: str | None
