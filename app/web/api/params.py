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


def json_body(max_bytes: int = BODY_MAX) -> dict[str, Any]:
    """The request's body: a JSON object of at most `max_bytes`, sent as application/json."""
    if (request.content_length or 0) > max_bytes:
        raise ApiError(400, f"the request body is over {max_bytes} bytes")
    if not request.is_json:
        raise ApiError(400, "send a JSON object (Content-Type: application/json)")
    data = request.get_data(cache=True)
    if len(data) > max_bytes:
        raise ApiError(400, f"the request body is over {max_bytes} bytes")
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


def required_text(body: dict[str, Any], name: str, default: str | None = None) -> str:
    """A string field, stripped; 400 when it is missing (and has no default) or not a string."""
    value = body.get(name, default)
    if value is None:
        raise ApiError(400, f"{name} is required")
    if not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string")
    return value.strip()


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false")
    return value


def optional_flag(body: dict[str, Any], name: str) -> bool | None:
    """A true/false field of a change, None when it is left out ("leave it as it is")."""
    return flag(body, name, False) if name in body else None


def change_fields(body: dict[str, Any], names: tuple[str, ...]) -> None:
    """The body of a change whose every field is optional: 400 for a field the endpoint does not
    know (a typo would otherwise change nothing, silently) and for an empty body."""
    unknown = sorted(set(body) - set(names))
    if unknown:
        raise ApiError(400, f"unknown field(s): {', '.join(unknown)[:200]}; known: "
                            f"{', '.join(names)}")
    if not body:
        raise ApiError(400, "nothing to change: give " + ", ".join(names[:-1])
                       + f" or {names[-1]}")


def number(body: dict[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{name} must be an integer")
    return value


DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
PAGING_QUERY = {"offset": "how many to skip (default 0)",
                "limit": f"how many to return (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})"}


def paging() -> tuple[int, int]:
    """(offset, limit) from the query: ?offset=0&limit=100 (at most 1000)."""
    return (int_arg("offset", 0, 0, 10**9), int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT))
