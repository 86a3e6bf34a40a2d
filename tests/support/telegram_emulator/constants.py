"""The emulator's limits, names and patterns (the real Bot API's where it has them)."""

from __future__ import annotations

import re
from typing import TypeVar

T = TypeVar("T")


LOOPBACK_HOST = "127.0.0.1"


DEFAULT_TOKEN = "123456:TEST-TOKEN"


DEFAULT_BOT_USERNAME = "whisper_it_test_bot"


BOT_FIRST_NAME = "Whisper IT (test)"


GROUP_TITLE = "Gruppo di test"
CHANNEL_TITLE = "Canale di test"


# The placeholder accounts Telegram puts in ``from`` when a message is sent on behalf of a
# chat (``sender_chat`` holds the chat): an anonymous group admin, a user "sending as" a
# channel, a channel's post automatically forwarded into its linked discussion group.
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"
}  # fmt: skip
CHANNEL_BOT = {"id": 136817688, "is_bot": True, "first_name": "Channel", "username": "Channel_Bot"}
TELEGRAM_SERVICE = {"id": 777000, "is_bot": False, "first_name": "Telegram"}


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


# What Telegram sends a bot that names no ``allowed_updates`` (of the types emulated).
UPDATE_TYPES = frozenset({"message", "edited_message", "callback_query", "my_chat_member"})


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
