from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from app.core.context import Context
    from app.models import Device, User


class Verdict(enum.Enum):
    OK = "ok"
    WRONG = "wrong"
    REPLAY = "replay"
    EXPIRED = "expired"


@dataclass
class Check:
    verdict: Verdict
    device: Device | None = None
    # The TOTP time step the response matched (claimed, or already claimed: a replay).
    step: int | None = None


class Factor(Protocol):
    """A typed second factor.

    `accepts` says whether a typed response is for this factor (by its shape), `verify`
    decides it.
    """

    name: str

    def accepts(self, response: str) -> bool: ...

    def verify(self, ctx: Context, user: User, device: Device | None,
               response: str) -> Check: ...
