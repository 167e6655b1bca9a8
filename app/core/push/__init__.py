"""Push to the companion app, in four rooms:

- `activation`: which devices can receive a push; activating one from the QR code's link;
- `device_calls`: the signed device API (who made a call, and only once);
- `lifecycle`: starting a push, following it, and `finish`ing the login it was for (the one
  place that turns a push's status into an outcome and its message, for every door);
- `answers`: the phone's side: what waits for it, its signed answer, a fraud report.

`watch` makes and reads the token with which a login page may hear (from the push event
stream) that its push stopped waiting. `errors` holds the error classes and the texts. The
names below are the package's interface; doors use them as `push.start`, `push.finish`, ...
"""

from app.core.push.activation import (
    ACTIVATION_PURPOSE,
    KIND,
    Activation,
    activate,
    activation_link,
    can_push,
    new_activation,
    push_devices,
    sends_at_once,
    set_subscription,
)
from app.core.push.answers import DECISIONS, answer, describe, pending_for, request_for_device
from app.core.push.device_calls import CALL_WINDOW_SECONDS, authenticate_call
from app.core.push.errors import (
    BLOCKED,
    MESSAGES,
    NOT_PUSH,
    TOO_MANY,
    ActivationError,
    AlreadyAnswered,
    BadAnswerSignature,
    DeviceAuthError,
    NotPushable,
    PushBlocked,
    PushError,
    PushLocked,
    TooManyPushes,
    UnknownRequest,
)
from app.core.push.lifecycle import (
    PushOutcome,
    answered_since,
    complete,
    expire,
    find,
    finish,
    is_blocked,
    start,
    status,
    statuses,
)
from app.core.push.watch import Watch, read_watch_token, watch_token
