"""What happens to the bot's place in a group, as Telegram does it: removed (kicked or
left), muted (restricted without the right to send), or the group upgraded to a
supergroup (a new chat id). Each announces itself with the update Telegram sends
(``my_chat_member``, or the two ``migrate_*`` service messages), and from then on the
chat refuses the bot's calls with Telegram's own errors."""

from __future__ import annotations

import copy
import time
from typing import Any

from tests.support.telegram_emulator.records import EmulatorError, _ApiError, _Chat, _Record

MUTED = "Bad Request: not enough rights to send text messages to the chat"
UPGRADED = "Bad Request: group chat was upgraded to a supergroup chat"
REMOVED = {
    "kicked": "Forbidden: bot was kicked from the {kind} chat",
    "left": "Forbidden: bot is not a member of the {kind} chat",
}
# A restricted member's rights (ChatMemberRestricted): all off, still a member.
RESTRICTED_RIGHTS = dict.fromkeys(
    (
        "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
        "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
        "can_send_other_messages", "can_add_web_page_previews", "can_change_info",
        "can_invite_users", "can_pin_messages", "can_manage_topics", "can_edit_tag",
        "can_react_to_messages",
    ),
    False,
)  # fmt: skip


class _Migrated(_ApiError):
    """The old group's answer once upgraded: 400 with ``parameters.migrate_to_chat_id``
    (python-telegram-bot raises ``ChatMigrated`` with it)."""

    def __init__(self, new_chat_id: int) -> None:
        super().__init__(400, UPGRADED)
        self.new_chat_id = new_chat_id

    def payload(self) -> dict[str, Any]:
        return super().payload() | {"parameters": {"migrate_to_chat_id": self.new_chat_id}}


class ChatChanges:
    """``remove_bot``, ``mute_bot``, ``migrate_group``. A removed bot or an upgraded group
    refuses every call in that chat; a muted bot is refused what writes (sends, edits,
    chat actions), and may still read and delete."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._refused: dict[int, _ApiError] = {}  # chat id -> every call fails so
        self._muted: set[int] = set()

    def remove_bot(
        self, *, chat_id: int, by_user_id: int, status: str = "kicked", announce: bool = True
    ) -> None:
        """The bot is kicked from (or leaves) the group; ``announce=False``: the bot never
        hears of it (the update was lost, or came while it was down)."""
        if status not in REMOVED:
            raise EmulatorError(f"status must be one of {sorted(REMOVED)}")
        with self._lock:
            chat = self._group(chat_id)
            kind = chat.chat["type"]
            self._refused[chat_id] = _ApiError(403, REMOVED[status].format(kind=kind))
            chat.members[self.bot_id] = status
            new = {"status": status, "user": self._bot_user()}
            if status == "kicked":
                new["until_date"] = 0
            if announce:
                self._announce_member(chat, by_user_id, new)

    def mute_bot(self, *, chat_id: int, by_user_id: int, announce: bool = True) -> None:
        """An admin takes the bot's right to send messages in the group."""
        with self._lock:
            chat = self._group(chat_id)
            self._muted.add(chat_id)
            new = {"status": "restricted", "user": self._bot_user(), "is_member": True}
            if announce:
                self._announce_member(chat, by_user_id, new | RESTRICTED_RIGHTS | {"until_date": 0})

    def migrate_group(
        self, *, chat_id: int, new_chat_id: int, user_id: int, announce: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The group becomes the supergroup ``new_chat_id`` (same members): the service
        messages in the old chat (``migrate_to_chat_id``) and in the new one
        (``migrate_from_chat_id``), both sent as updates unless ``announce=False``; the
        old id refuses every call."""
        with self._lock:
            old = self._group(chat_id)
            if old.chat["type"] != "group" or new_chat_id in self._chats:
                raise EmulatorError("only a group upgrades, to a supergroup id not yet used")
            description = old.chat | {"id": new_chat_id, "type": "supergroup"}
            new = self._chats[new_chat_id] = _Chat(chat=description, members=dict(old.members))
            self._refused[chat_id] = _Migrated(new_chat_id)
            user = self._user(user_id, "Utente")
            return (
                self._service_message(old, user, {"migrate_to_chat_id": new_chat_id}, announce),
                self._service_message(new, user, {"migrate_from_chat_id": chat_id}, announce),
            )

    def _group(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None or chat.chat["type"] not in ("group", "supergroup"):
            raise EmulatorError(f"no group {chat_id}: a user must write there first")
        return chat

    def _announce_member(self, chat: _Chat, by_user_id: int, new: dict[str, Any]) -> None:
        change = {
            "chat": copy.deepcopy(chat.chat),
            "from": self._user(by_user_id, "Admin"),
            "date": int(time.time()),
            "old_chat_member": {"status": "member", "user": self._bot_user()},
            "new_chat_member": new,
        }
        self._enqueue({"my_chat_member": change})

    def _service_message(
        self, chat: _Chat, user: dict[str, Any], fields: dict[str, Any], announce: bool
    ) -> dict[str, Any]:
        message = self._new_message(chat, user, None, strict=False)
        message.update(fields)
        chat.records[message["message_id"]] = _Record(message=message, from_bot=False)
        if announce:
            self._enqueue({"message": copy.deepcopy(message)})
        return copy.deepcopy(message)

    # --- the refusals, before the methods' own checks -------------------------------------

    def _refusal(self, params: dict[str, Any]) -> _ApiError | None:
        chat_id = params.get("chat_id")
        return self._refused.get(chat_id) if isinstance(chat_id, int) else None

    def _known_chat(self, params: dict[str, Any]) -> _Chat:
        if (refusal := self._refusal(params)) is not None:
            raise refusal
        return super()._known_chat(params)  # type: ignore[misc]

    def _refuse_writes(self, params: dict[str, Any]) -> None:
        if (refusal := self._refusal(params)) is not None:
            raise refusal
        if params.get("chat_id") in self._muted:
            raise _ApiError(400, MUTED)

    def _bot_send(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        with self._lock:
            self._refuse_writes(params)
        return super()._bot_send(params, *args, **kwargs)  # type: ignore[misc]

    def _editable(self, params: dict[str, Any]) -> _Record:
        self._refuse_writes(params)
        return super()._editable(params)  # type: ignore[misc]

    async def _send_chat_action(self, params: dict[str, Any]) -> bool:
        with self._lock:
            self._refuse_writes(params)
        return await super()._send_chat_action(params)  # type: ignore[misc]
