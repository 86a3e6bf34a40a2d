"""An in-process fake of the Bot API for fast unit tests, as python-telegram-bot's own
suite does it: a ``BaseRequest`` whose ``do_request`` answers from memory.

It records every call (method + parameters) and keeps each chat's messages with their
edit history, so a test can assert what a user would see. No sockets, no event-loop
servers: a whole job's delivery runs in milliseconds. The process-level tests use the
HTTP emulator (tests/support/telegram_emulator.py) instead.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from telegram import Bot
from telegram.request import BaseRequest, RequestData

TOKEN = "123456:TEST-unit-token"
BOT_ID = 123456
FILE_PREFIX = "files/"


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str | None
    reply_to: int | None
    document: str | None = None  # file name of a sent document
    edits: list[str] = field(default_factory=list)
    deleted: bool = False


class ApiError(Exception):
    """What Telegram answers instead of a result."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


@dataclass(frozen=True)
class Call:
    method: str
    params: dict[str, Any]


class FakeBotApi(BaseRequest):
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[int, int], SentMessage] = {}
        self.files: dict[str, bytes] = {}
        self.fail: dict[str, tuple[int, str]] = {}  # method -> (HTTP status, description)
        # method -> {n: (HTTP status, description)}: only its n-th call (from 1) fails.
        self.fail_nth: dict[str, dict[int, tuple[int, str]]] = {}
        self._ids = itertools.count(1000)

    # --- what tests use -------------------------------------------------------------------

    def bot(self) -> Bot:
        return Bot(
            TOKEN,
            base_url="https://fake.invalid/bot",
            base_file_url="https://fake.invalid/file/bot",
            request=self,
            get_updates_request=self,
        )

    def add_file(self, file_id: str, data: bytes) -> None:
        self.files[file_id] = data

    def chat(self, chat_id: int) -> list[SentMessage]:
        return [m for (chat, _), m in sorted(self.messages.items()) if chat == chat_id]

    def visible(self, chat_id: int) -> list[str]:
        """The final text of each message still in the chat (documents as their name)."""
        return [
            (m.edits[-1] if m.edits else m.text) or f"[{m.document}]"
            for m in self.chat(chat_id)
            if not m.deleted
        ]

    def methods(self) -> list[str]:
        return [call.method for call in self.calls]

    # --- BaseRequest ----------------------------------------------------------------------

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        if method == "GET":  # a file download
            file_path = url.split(FILE_PREFIX, 1)[-1]
            data = self.files.get(file_path.split("/")[-1])
            return (200, data) if data is not None else (404, b"")
        name = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data is not None else {}
        if request_data is not None:
            for part, upload in request_data.multipart_data.items():
                params[f"{part}:filename"] = upload[0]
        self.calls.append(Call(name, params))
        nth = sum(call.method == name for call in self.calls)
        failure = self.fail.get(name) or self.fail_nth.get(name, {}).get(nth)
        uploads = request_data.multipart_data.values() if request_data is not None else ()
        if failure is None and any(not upload[1] for upload in uploads):
            failure = (400, "Bad Request: file must be non-empty")  # as Telegram says
        if failure is not None:
            status, description = failure
            return status, _body({"ok": False, "error_code": status, "description": description})
        handler = getattr(self, f"_{name}", None)
        if handler is None:
            return 200, _body({"ok": True, "result": True})
        try:
            return 200, _body({"ok": True, "result": handler(params)})
        except ApiError as exc:
            return exc.status, _body(
                {"ok": False, "error_code": exc.status, "description": exc.description}
            )

    # --- methods --------------------------------------------------------------------------

    def _getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "whisper-it", "username": "test_bot"}

    def _getFile(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params["file_id"]
        size = len(self.files.get(file_id, b""))
        return {
            "file_id": file_id,
            "file_unique_id": f"u-{file_id}",
            "file_size": size,
            "file_path": f"{FILE_PREFIX}{file_id}",
        }

    def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._new(params, text=params["text"])

    def _sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        name = next((v for k, v in params.items() if k.endswith(":filename")), "document")
        return self._new(params, text=params.get("caption"), document=name)

    def _editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.messages.get((int(params["chat_id"]), int(params["message_id"])))
        if message is None or message.deleted:  # (its user deleted it)
            raise ApiError(400, "Bad Request: message to edit not found")
        message.edits.append(params["text"])
        return self._message_dict(message)

    def _deleteMessage(self, params: dict[str, Any]) -> bool:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key in self.messages:
            self.messages[key].deleted = True
        return True

    def _new(self, params: dict[str, Any], *, text: str | None, document: str | None = None):
        reply = params.get("reply_parameters") or {}
        message = SentMessage(
            chat_id=int(params["chat_id"]),
            message_id=next(self._ids),
            text=text,
            reply_to=reply.get("message_id") if isinstance(reply, dict) else None,
            document=document,
        )
        self.messages[(message.chat_id, message.message_id)] = message
        return self._message_dict(message)

    @staticmethod
    def _message_dict(message: SentMessage) -> dict[str, Any]:
        data: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": message.chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "whisper-it"},
        }
        if message.text is not None:
            data["text"] = message.edits[-1] if message.edits else message.text
        return data


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()
