"""What users do: messages, media and button presses injected as updates."""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.support.telegram_emulator.constants import (
    BOT_FIRST_NAME,
    CHANNEL_BOT,
    CHANNEL_TITLE,
    GROUP_ANONYMOUS_BOT,
    GROUP_TITLE,
    TELEGRAM_SERVICE,
    UPDATE_TYPES,
)
from tests.support.telegram_emulator.records import (
    EmulatorError,
    _ApiError,
    _Chat,
    _Record,
    _Webhook,
)
from tests.support.telegram_emulator.text import detect_entities
from tests.support.telegram_emulator.wire import _present, _suffix


class UserActions:
    """What users do: messages, media and button presses injected as updates."""

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
        topic: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        entities: list[dict[str, Any]] | None = None,
        sender_chat: int | None = None,
        automatic_forward: bool = False,
    ) -> dict[str, Any]:
        """``sender_chat``: sent on behalf of that chat (see ``_on_behalf_of``)."""
        fields: dict[str, Any] = {"text": text}
        found = detect_entities(text) if entities is None else entities
        if found:
            fields["entities"] = found
        return self._inject_message(
            user_id, chat_id, chat_type, reply_to, first_name, username, fields,
            sender_chat=sender_chat, automatic_forward=automatic_forward, topic=topic,
        )  # fmt: skip

    def edit_message(
        self, message: dict[str, Any], *, text: str | None = None, caption: str | None = None
    ) -> dict[str, Any]:
        """The user edits ``message`` (as ``send_*`` returned it): an ``edited_message``
        update carrying the new text or caption and an ``edit_date``."""
        with self._lock:
            edited = copy.deepcopy(message)
            edited["edit_date"] = int(time.time())
            if text is not None:
                edited["text"] = text
                edited.pop("entities", None)
                if found := detect_entities(text):
                    edited["entities"] = found
            if caption is not None:
                edited["caption"] = caption
            chat = self._chats[edited["chat"]["id"]]
            chat.records[edited["message_id"]] = _Record(message=edited, from_bot=False)
            self._enqueue({"edited_message": copy.deepcopy(edited)})
            return copy.deepcopy(edited)

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
        topic: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        forward_origin: dict[str, Any] | None = None,
        forward_of: str | None = None,
        sender_chat: int | None = None,
        automatic_forward: bool = False,
    ) -> dict[str, Any]:
        """``forward_origin``: a Bot API MessageOrigin (the note was forwarded by user_id).
        ``forward_of`` (a file_id sent before) forwards that same file, which keeps its
        file_id and file_unique_id as on Telegram (``data`` is ignored). ``sender_chat``:
        sent on behalf of that chat (see ``_on_behalf_of``)."""
        if forward_of is not None:
            with self._lock:
                stored = self._files[forward_of]
        else:
            stored = self._store_file(data, "voice", ".oga", file_size)
        media = self._media_fields(stored) | {"duration": duration, "mime_type": mime_type}
        extra = {"forward_origin": forward_origin} if forward_origin else None
        return self._inject_media(
            "voice", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username,
            extra=extra, sender_chat=sender_chat, automatic_forward=automatic_forward, topic=topic,
        )  # fmt: skip

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
        topic: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """``media_group_id``: an item of an album (the same id on each of its items)."""
        suffix = _suffix(file_name, mime_type, ".mp3")
        stored = self._store_file(data, "music", suffix, file_size)
        media = self._media_fields(stored) | {"duration": duration, "mime_type": mime_type}
        media |= _present(file_name=file_name, title=title, performer=performer)
        return self._inject_media(
            "audio", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username,
            topic=topic, extra=_present(media_group_id=media_group_id),
        )  # fmt: skip

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
        topic: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """``media_group_id``: an item of an album (the same id on each of its items)."""
        stored = self._store_file(data, "videos", _suffix(file_name, mime_type, ".mp4"), file_size)
        media = self._media_fields(stored) | {
            "duration": duration,
            "mime_type": mime_type,
            "width": width,
            "height": height,
        }
        media |= _present(file_name=file_name)
        return self._inject_media(
            "video", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username,
            topic=topic, extra=_present(media_group_id=media_group_id),
        )  # fmt: skip

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
        topic: int | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
    ) -> dict[str, Any]:
        stored = self._store_file(data, "video_notes", ".mp4", file_size)
        media = self._media_fields(stored) | {"duration": duration, "length": length}
        return self._inject_media(
            "video_note", media, None, user_id, chat_id, chat_type, reply_to, first_name, username,
            topic=topic,
        )  # fmt: skip

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
        topic: int | None = None,
        caption: str | None = None,
        file_size: int | None = None,
        first_name: str = "Utente",
        username: str | None = None,
        media_group_id: str | None = None,
    ) -> dict[str, Any]:
        """``media_group_id``: an item of an album (the same id on each of its items)."""
        suffix = _suffix(file_name, mime_type, "")
        stored = self._store_file(data, "documents", suffix, file_size)
        media = self._media_fields(stored) | {"file_name": file_name, "mime_type": mime_type}
        return self._inject_media(
            "document", media, caption, user_id, chat_id, chat_type, reply_to, first_name, username,
            topic=topic, extra=_present(media_group_id=media_group_id),
        )  # fmt: skip

    def send_other(
        self,
        *,
        user_id: int,
        content: dict[str, Any],
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> dict[str, Any]:
        """Any other message kind, given as its Bot API fields: ``{"sticker": {...}}``,
        ``{"location": {"latitude": 45.0, "longitude": 9.0}}``, ``{"photo": [...]}``."""
        return self._inject_message(user_id, chat_id, chat_type, None, "Utente", None, content)

    def delete_topic(self, *, chat_id: int, topic: int) -> None:
        """An admin deletes a forum topic, its messages with it: sends naming it fail
        ("message thread not found") from now on."""
        with self._lock:
            chat = self._chats.get(chat_id)
            if chat is None or topic not in chat.topics:
                raise EmulatorError(f"no topic {topic} in chat {chat_id}")
            chat.topics.discard(topic)
            for record in chat.records.values():
                if record.message.get("message_thread_id") == topic:
                    record.deleted = True

    def delete_message(self, *, chat_id: int, message_id: int) -> None:
        """A user deletes a message (theirs, or, as an admin, anyone's). Telegram tells the
        bot nothing: its replies to it find it gone, and edits of it fail."""
        with self._lock:
            chat = self._chats.get(chat_id)
            record = chat.records.get(message_id) if chat else None
            if record is None or record.deleted:
                raise EmulatorError(f"no message {message_id} in chat {chat_id}")
            record.deleted = True

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
        *,
        sender_chat: int | None = None,
        automatic_forward: bool = False,
        topic: int | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            user = self._user(user_id, first_name, username)
            chat = self._chat_for(user_id, chat_id, chat_type, user)
            shown, on_behalf = user, {}
            if sender_chat is not None:
                shown, on_behalf = self._on_behalf_of(chat, sender_chat, automatic_forward)
            if topic is not None:
                self._open_topic(chat, topic)
            message = self._new_message(chat, shown, reply_to, strict=False, topic=topic)
            message.update(on_behalf)
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
        *,
        extra: dict[str, Any] | None = None,
        sender_chat: int | None = None,
        automatic_forward: bool = False,
        topic: int | None = None,
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {kind: media, **(extra or {})}
        if caption is not None:
            fields["caption"] = caption
            if found := detect_entities(caption):
                fields["caption_entities"] = found
        return self._inject_message(
            user_id, chat_id, chat_type, reply_to, first_name, username, fields,
            sender_chat=sender_chat, automatic_forward=automatic_forward, topic=topic,
        )  # fmt: skip

    def _on_behalf_of(
        self, chat: _Chat, sender_chat: int, automatic_forward: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """What Telegram shows of a message sent on behalf of ``sender_chat``: a placeholder
        ``from`` and the ``sender_chat`` (the person behind it stays hidden). The group
        itself: an anonymous admin; another id: a channel, whose post is an automatic
        forward into its discussion group when ``automatic_forward``."""
        if chat.chat["type"] not in ("group", "supergroup", "channel"):
            raise EmulatorError("only group and channel messages have a sender_chat")
        if sender_chat == chat.chat["id"]:
            return copy.deepcopy(GROUP_ANONYMOUS_BOT), {"sender_chat": copy.deepcopy(chat.chat)}
        channel = {"id": sender_chat, "type": "channel", "title": CHANNEL_TITLE}
        if not automatic_forward:
            return copy.deepcopy(CHANNEL_BOT), {"sender_chat": channel}
        origin = {"type": "channel", "chat": channel, "message_id": 1, "date": int(time.time())}
        fields = {"sender_chat": channel, "is_automatic_forward": True, "forward_origin": origin}
        return copy.deepcopy(TELEGRAM_SERVICE), fields

    def _new_message(
        self,
        chat: _Chat,
        sender: dict[str, Any],
        reply_to: int | None,
        *,
        strict: bool,
        topic: int | None = None,
    ) -> dict[str, Any]:
        """A new message in ``chat``. Its forum topic, as Telegram places it: ``topic`` if
        given, else the replied-to message's (a reply stays in its thread), else none
        ("General")."""
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
            if topic is None and replied.get("is_topic_message"):
                topic = replied["message_thread_id"]
        if topic is not None:
            message["message_thread_id"] = topic
            message["is_topic_message"] = True
        chat.next_message_id += 1
        return message

    @staticmethod
    def _open_topic(chat: _Chat, topic: int) -> None:
        """A user writes in forum topic ``topic``: the supergroup is a forum, the topic exists."""
        if chat.chat["type"] != "supergroup":
            raise EmulatorError("forum topics exist in supergroups only")
        chat.chat["is_forum"] = True
        chat.topics.add(topic)

    def _subscribed(self, update: dict[str, Any]) -> bool:
        kind = next(key for key in update if key != "update_id")
        return kind in (set(self._allowed_updates) or UPDATE_TYPES)
