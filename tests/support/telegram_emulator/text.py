"""Telegram's text rules: UTF-16 offsets, automatic entities, HTML parse mode."""

from __future__ import annotations

import re
import struct
from typing import Any

from tests.support.telegram_emulator.constants import (
    _COMMAND,
    _HASHTAG,
    _MENTION,
    _URL,
    _URL_TRAILING_PUNCTUATION,
)
from tests.support.telegram_emulator.records import HtmlParseError


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
