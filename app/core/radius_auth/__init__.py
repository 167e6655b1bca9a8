"""VPN logins: what an Access-Request means for the password and the second factor.

The RADIUS door (radius/) decodes a packet into an `AccessRequest`, calls `decide` (or
`decide_many` for a batch) in a worker thread and encodes the `Decision`. Everything about
modes, the delimiter, factors, challenge State, push and fail modes is decided here, with the
same sign-in (app/core/signin.py), passcode check (app/core/passcodes.py), lockout, replay
and audit as the web doors. Nothing here imports pyrad.

- `entry`: decide one request or a batch; the client's fail mode;
- `modes`: append, challenge and second-factor-only modes; reading "password,factor";
- `challenge`: the Access-Challenge State;
- `pushes`: a push from the VPN, and the final answer once the door's wait has ended;
- `guessing`: the limit on failed passwords (per username, per NAS + Calling-Station-Id);
- `decision`: the request and decision types, the texts, and the audited answer.
"""

from app.core.attempts import purge as purge_counters
from app.core.radius_auth.challenge import CHALLENGE_TTL_SECONDS, PUSH_NUMBER
from app.core.radius_auth.challenge import purge as purge_challenges
from app.core.radius_auth.decision import (
    ACTION,
    APPEND_FAILED,
    CHALLENGE_GONE,
    DOOR,
    UNAVAILABLE,
    AccessRequest,
    Decision,
    Outcome,
    error_decision,
    origin_of,
    speaking,
)
from app.core.radius_auth.entry import (
    DEGRADED,
    PAP_ONLY,
    authenticate,
    check_password_apart,
    check_then_decide,
    checks_password_apart,
    database_unavailable,
    decide,
    decide_many,
    verifies_password,
)
from app.core.radius_auth.guessing import WAIT as GUESSING_WAIT
from app.core.radius_auth.modes import RECOVERY_REFUSED
from app.core.radius_auth.pushes import (
    PUSH_FATIGUE,
    PUSH_SENT,
    PUSH_UNAVAILABLE_ALONE,
    finish_push,
    push_answers,
)
