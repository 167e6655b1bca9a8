"""What an admin API call sends, read strictly: a small JSON object as the body, whole numbers
in bounds in the query. Anything else is ApiError(400) with a message that says what is wrong
(never a stack trace, never a 500 from a number the database cannot hold)."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from app.web.api.base import ApiError

BODY_MAX = 8 * 1024  # bytes: a reason and a few fields; anything bigger is not ours
DIGITS_MAX = 18  # a query number of more digits is refused before it is converted


def json_body() -> dict[str, Any]:
    """The request's body: a JSON object of at most BODY_MAX bytes, sent as application/json."""
    if (request.content_length or 0) > BODY_MAX:
        raise ApiError(400, f"the request body is over {BODY_MAX} bytes")
    if not request.is_json:
        raise ApiError(400, "send a JSON object (Content-Type: application/json)")
    data = request.get_data(cache=True)
    if len(data) > BODY_MAX:
        raise ApiError(400, f"the request body is over {BODY_MAX} bytes")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise ApiError(400, "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return body


def text_field(body: dict[str, Any], name: str) -> str:
    """A string field of the body; missing is "" (the core says whether it may be empty)."""
    value = body.get(name, "")
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value


def int_arg(name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole number from the query string, low..high; `default` when it is not given."""
    raw = request.args.get(name, "")
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= DIGITS_MAX) \
            or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return int(raw)
