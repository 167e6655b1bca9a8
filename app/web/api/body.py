"""Reading a JSON request body and paging parameters, with a clear 400 for anything else."""

from __future__ import annotations

from typing import Any

from flask import request

from app.web.api.base import ApiError

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def json_object() -> dict[str, Any]:
    """The request's JSON object; 400 for a body that is not one."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object "
                            "(Content-Type: application/json)")
    return body


def text(body: dict[str, Any], key: str, default: str | None = None) -> str:
    """A string field; 400 when it is missing (and has no default) or not a string."""
    value = body.get(key, default)
    if value is None:
        raise ApiError(400, f"{key} is required")
    if not isinstance(value, str):
        raise ApiError(400, f"{key} must be a string")
    return value.strip()


def flag(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false")
    return value


def number(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{key} must be an integer")
    return value


def _query_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not low <= int(raw) <= high:
        raise ApiError(400, f"{name} must be an integer from {low} to {high}")
    return int(raw)


def paging() -> tuple[int, int]:
    """(offset, limit) from the query: ?offset=0&limit=100 (at most 1000)."""
    return (_query_int("offset", 0, 0, 10**9),
            _query_int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT))


PAGING_QUERY = {"offset": "how many to skip (default 0)",
                "limit": f"how many to return (default {DEFAULT_LIMIT}, at most {MAX_LIMIT})"}
