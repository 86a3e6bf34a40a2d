"""The Bot API methods the bot calls, answered like Telegram."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import mimetypes
import re
import time
from typing import Any

from tests.support.telegram_emulator.constants import (
    CHAT_ACTIONS,
    GET_UPDATES_TERMINATED,
    GET_UPDATES_WHILE_WEBHOOK,
    LOCAL_MAX_DOWNLOAD_BYTES,
    MAX_CAPTION_LENGTH,
    MAX_DOWNLOAD_BYTES,
    MAX_TEXT_LENGTH,
    MAX_UPDATES_PER_CALL,
    NOT_MODIFIED,
)
from tests.support.telegram_emulator.records import SentFile, _ApiError, _Chat, _Record, _Webhook
from tests.support.telegram_emulator.text import _png_size
from tests.support.telegram_emulator.wire import _check_length, _formatted, _optional_int, _suffix


class BotMethods:
    """The Bot API methods the bot calls, answered like Telegram."""

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

    @staticmethod
    def _named_topic(params: dict[str, Any], chat: _Chat) -> int | None:
        """The ``message_thread_id`` a send names: a topic of this forum (None: none named;
        the message then goes to the replied-to message's topic, else to "General")."""
        thread = params.get("message_thread_id")
        if thread is None:
            return None
        if not chat.chat.get("is_forum") or thread not in chat.topics:
            raise _ApiError(400, "Bad Request: message thread not found")
        return int(thread)

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
            topic = self._named_topic(params, chat)
            message = self._new_message(chat, self._bot_user(), reply_to, strict=True, topic=topic)
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
        if not sent.data:  # what Telegram answers to an empty upload
            raise _ApiError(400, "Bad Request: file must be non-empty")
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
