"""One structured record per authentication step, in the database and the log.

Callers pass names and outcomes only; nothing here accepts a secret.
"""

from __future__ import annotations

import json
import logging

from app.core.context import Context, Origin
from app.models import AuditEvent

log = logging.getLogger("um2fa.audit")


def record(ctx: Context, origin: Origin, action: str, result: str, *, username: str = "",
           device: str = "", detail: str = "") -> AuditEvent:
    detail = "; ".join(part for part in (detail, origin.info) if part)
    event = AuditEvent(at=ctx.now(), username=username, door=origin.door, action=action,
                       result=result, client_addr=origin.client_addr, device=device,
                       detail=detail)
    ctx.db.add(event)
    log.info(json.dumps({"audit": action, "result": result, "user": username,
                         "door": origin.door, "client": origin.client_addr,
                         "device": device, "detail": detail}))
    return event


def log_only(origin: Origin, action: str, result: str, *, username: str = "", detail: str = "",
             level: int = logging.WARNING) -> None:
    """An audit line for when the database cannot take the record (it is unreachable)."""
    detail = "; ".join(part for part in (detail, origin.info) if part)
    log.log(level, json.dumps({"audit": action, "result": result, "user": username,
                               "door": origin.door, "client": origin.client_addr,
                               "detail": detail, "stored": False}))
