"""Second factors behind one small interface (see base.Factor)."""

from app.core.factors.base import Check, Factor, Verdict
from app.core.factors.push import PushFactor
from app.core.factors.recovery import RecoveryFactor
from app.core.factors.totp import TotpFactor

FACTORS: dict[str, Factor] = {f.name: f for f in (TotpFactor(), RecoveryFactor(), PushFactor())}

__all__ = ["FACTORS", "Check", "Factor", "Verdict", "PushFactor", "RecoveryFactor", "TotpFactor"]
