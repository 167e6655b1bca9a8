"""Push approval from the companion app: `start` sends it, `verify` uses an approved answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.context import Origin
from app.core.factors.base import Check, Verdict

if TYPE_CHECKING:
    from app.core.context import Context
    from app.models import Device, User


class PushFactor:
    """The response to verify is the push request's id; the answer came from the phone."""

    name = "push"

    def accepts(self, response: str) -> bool:
        return response.lower() == "push"

    def start(self, ctx: Context, user: User, device: Device | None, *,
              origin: Origin | None = None, service: str = "") -> str:
        from app.core import push

        request = push.start(ctx, origin or Origin(door="core"), user, device, service=service)
        return request.public_id

    def verify(self, ctx: Context, user: User, device: Device | None, response: str) -> Check:
        from app.core import push

        state = push.status(ctx, user, response)
        if state == "approved":
            return Check(Verdict.OK, device)
        return Check(Verdict.EXPIRED if state == "expired" else Verdict.WRONG, device)
