"""The server: life cycle, HTTP routing, update queue, webhook delivery, observation."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import aiohttp
from aiohttp import web

from tests.support.telegram_emulator.constants import (
    _TOKEN_SHAPE,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    FIRST_UPDATE_ID,
    LOOPBACK_HOST,
    MAX_UPLOAD_BYTES,
    SECRET_TOKEN_HEADER,
    SHUTDOWN_TIMEOUT_SECONDS,
    START_TIMEOUT_SECONDS,
    WAIT_POLL_SECONDS,
    WEBHOOK_REQUEST_TIMEOUT,
    WEBHOOK_RETRY_FIRST_DELAY,
    WEBHOOK_RETRY_MAX_DELAY,
    T,
)
from tests.support.telegram_emulator.records import (
    ApiCall,
    BotMessage,
    EmulatorError,
    WaitTimeout,
    _ApiError,
    _Chat,
    _Record,
    _StoredFile,
    _Webhook,
)
from tests.support.telegram_emulator.wire import _read_params


class EmulatorCore:
    """The server: life cycle, HTTP routing, update queue, webhook delivery, observation."""

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

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
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
            topic=message.get("message_thread_id") if message.get("is_topic_message") else None,
            reply_markup=copy.deepcopy(message.get("reply_markup")),
            document=record.document,
            photo=record.photo,
            edit_history=tuple(record.edit_history),
            edited=record.edited,
            deleted=record.deleted,
        )

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
