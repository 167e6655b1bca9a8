"""Second factors behind one small interface (see base.Factor). A push is not one of them:
it is answered on the phone, not typed, and lives in app/core/push/."""

from app.core.factors.base import Check, Factor, Verdict
from app.core.factors.recovery import RecoveryFactor
from app.core.factors.totp import TotpFactor

FACTORS: dict[str, Factor] = {f.name: f for f in (TotpFactor(), RecoveryFactor())}

__all__ = ["FACTORS", "Check", "Factor", "Verdict", "RecoveryFactor", "TotpFactor"]
