"""Issuing recovery passcodes (their verification is the recovery factor)."""

from __future__ import annotations

from app.core import audit, notices
from app.core.context import Context, Origin
from app.core.factors import recovery as recovery_factor
from app.models import RecoveryPasscode, User


def issue(ctx: Context, origin: Origin, user: User) -> tuple[str, RecoveryPasscode]:
    """A new 9-digit passcode for `user`, revoking the previous one. Audited (the code is not)
    and the user told (app/core/notices.py)."""
    code, row = recovery_factor.issue(ctx, user)
    audit.record(ctx, origin, "recovery.issue", "ok", username=user.username,
                 detail=f"expires {row.expires_at.isoformat(timespec='seconds')}")
    notices.tell(ctx, origin, user, notices.RECOVERY_ISSUED, passcode=row)
    return code, row
