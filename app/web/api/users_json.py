"""How the admin API writes a person, their devices, recovery passcodes (never a code),
remembered browsers and audit records as JSON, and the JSON schemas of each for the OpenAPI
document. Times are ISO-8601 in UTC ("2026-12-06T08:00:00Z"), or null."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.core import support
from app.core.context import Context
from app.models import AuditEvent, Device, RecoveryPasscode, RememberedBrowser, User

TIME = {"type": ["string", "null"], "format": "date-time"}
STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}


def when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def object_schema(**properties: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _who(user: User, status: str, until: datetime | None) -> dict[str, Any]:
    return {"username": user.username, "name": user.display_name, "email": user.email,
            "state": status, "locked_until": when(until)}


def summary(ctx: Context, user: User) -> dict[str, Any]:
    """Who the person is and their state: active, locked (until when) or disabled."""
    return _who(user, *support.state(ctx, user))


SUMMARY = object_schema(username=STRING, name=STRING, email=STRING,
                        state={"enum": ["active", "locked", "disabled"]}, locked_until=TIME)


def device(row: Device) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "kind": row.kind, "type": row.device_type,
            "platform": row.platform, "active": row.active, "default": row.is_default,
            "added": when(row.created_at), "last_used": when(row.last_used_at),
            "enrolled_via": row.enrolled_via}


DEVICE = object_schema(id=INTEGER, name=STRING, kind=STRING, type=STRING, platform=STRING,
                       active=BOOLEAN, default=BOOLEAN, added=TIME, last_used=TIME,
                       enrolled_via=STRING)


def passcode(row: RecoveryPasscode, status: str) -> dict[str, Any]:
    """A recovery passcode's dates and status; the code itself is never kept, nor shown."""
    return {"issued": when(row.created_at), "expires": when(row.expires_at), "status": status}


PASSCODE = object_schema(issued=TIME, expires=TIME,
                         status={"enum": ["unused", "used", "revoked", "expired"]})


def browser(row: RememberedBrowser) -> dict[str, Any]:
    return {"id": row.id, "label": row.label, "address": row.address,
            "added": when(row.created_at), "expires": when(row.expires_at),
            "last_used": when(row.last_used_at)}


BROWSER = object_schema(id=INTEGER, label=STRING, address=STRING, added=TIME, expires=TIME,
                        last_used=TIME)


def person(view: support.UserView) -> dict[str, Any]:
    return {**_who(view.user, view.state, view.locked_until),
            "devices": [device(d) for d in view.devices],
            "recovery_passcodes": [passcode(p, status) for p, status in view.passcodes],
            "remembered_browsers": [browser(b) for b in view.remembered],
            "sessions": view.sessions}


PERSON = {"type": "object", "properties": {
    **SUMMARY["properties"],
    "devices": {"type": "array", "items": DEVICE},
    "recovery_passcodes": {"type": "array", "items": PASSCODE},
    "remembered_browsers": {"type": "array", "items": BROWSER},
    "sessions": INTEGER}}


def record(row: AuditEvent) -> dict[str, Any]:
    return {"id": row.id, "at": when(row.at), "door": row.door, "action": row.action,
            "result": row.result, "device": row.device, "address": row.client_addr,
            "actor": row.actor, "detail": row.detail}


RECORD = object_schema(id=INTEGER, at=TIME, door=STRING, action=STRING, result=STRING,
                       device=STRING, address=STRING, actor=STRING, detail=STRING)
