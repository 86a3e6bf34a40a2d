"""The Bot API wire format: request parameters in, checked values and replies out."""

from __future__ import annotations

import json
import mimetypes
from typing import Any

from aiohttp import web

from tests.support.telegram_emulator.constants import RAW_STRING_PARAMS
from tests.support.telegram_emulator.records import HtmlParseError, SentFile, _ApiError
from tests.support.telegram_emulator.text import parse_html


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
