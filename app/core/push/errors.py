"""What a push can fail with, and the texts people read about a push's outcome.

Each error is a class, so a door picks its answer (an HTTP status, a RADIUS reject) by type,
never by the text. Every message is safe to show.
"""

from __future__ import annotations

from app.core.texts import Translated
from app.i18n import N_, _

# Translated when read (`MESSAGES[status]`), in the language of the door that reads it.
MESSAGES = Translated({
    "pending": N_("Push sent. Check your phone."),
    "approved": N_("Approved."),
    "used": N_("This push was already used to sign in."),
    "denied": N_("The push was denied."),
    "mismatch": N_("The number typed on the phone did not match. Please try again."),
    "fraud": N_("The push was denied and reported as fraud. Contact the IT help desk if this "
                "was a mistake."),
    "expired": N_("The push expired before it was answered. Send another one or enter a "
                  "passcode."),
})
# msgids: translated with `_()` where they are used
BLOCKED = N_("Pushes to your account are paused because a push was reported as fraud. Enter a "
             "passcode instead, or try again later.")
TOO_MANY = N_("You have too many pushes waiting. Answer or wait for one of them, then try "
              "again.")
NOT_PUSH = N_("That device cannot receive pushes. Enter a passcode instead.")
ALREADY_ANSWERED = N_("This request was already answered.")


class PushError(ValueError):
    """A push that cannot be started or answered; the message is safe to show."""


class NotPushable(PushError):
    """The chosen device is not the user's active companion app."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else _(NOT_PUSH))


class PushLocked(PushError):
    """The user is locked out: no push is sent."""


class PushBlocked(PushError):
    """Pushes are paused after a fraud report."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else _(BLOCKED))


class TooManyPushes(PushError):
    """The user has as many pushes waiting as allowed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message if message is not None else _(TOO_MANY))


class ActivationError(PushError):
    """An activation link or the app's key that cannot activate a device."""


class UnknownRequest(PushError):
    """No such push request for this device."""


class AlreadyAnswered(PushError):
    """The push was answered already, or expired before the answer came."""


class BadAnswerSignature(PushError):
    """The answer is not signed by the device's key."""


class DeviceAuthError(ValueError):
    """A device API call that is not properly signed; the message is safe to show."""
