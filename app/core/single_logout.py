"""Single logout's rules, without any protocol: whether a LogoutRequest matches this browser's
session, and the chain that signs the other services of the session out one after the other.

The SSO door (app/web/sso_logout.py) reads the SAML, asks these functions, and keeps the chain
in the browser's session between the steps (`Chain.to_dict`, `Chain.from_dict`)."""

from __future__ import annotations

import enum
import hmac
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Participant:
    """A service this session signed in to, with the NameID it was given."""

    sp: str
    format: str
    nameid: str


@dataclass(frozen=True)
class LogoutAsk:
    """What a LogoutRequest says: who asks, whom it names, which session(s)."""

    issuer: str
    nameid: str
    nameid_format: str = ""
    sp_name_qualifier: str = ""
    session_indexes: tuple[str, ...] = ()


def participants(saml_sps: list[dict]) -> list[Participant]:
    """The session's record (session["saml_sps"]) as participants, in sign-in order."""
    return [Participant(s["sp"], s.get("format", ""), s.get("nameid", "")) for s in saml_sps]


def refusal(session: list[Participant], session_index: str, ask: LogoutAsk) -> str | None:
    """Why the LogoutRequest does not end this session, or None when it does.

    It must come from a service of the session and name exactly what we gave that service in
    this session: its NameID (and format and SPNameQualifier when it states them) and, in one
    SessionIndex element, this session's index. A new sign-in has a new index, so an old
    request replayed later ends nothing. The reasons name no NameID (they go to the audit)."""
    participant = next((p for p in session if p.sp == ask.issuer), None)
    if participant is None or not session_index:
        return "the service has no sign-in in this session"
    if not hmac.compare_digest(ask.nameid.encode(), participant.nameid.encode()):
        return "the NameID is not the one this service was given in this session"
    if ask.nameid_format and ask.nameid_format != participant.format:
        return "the NameID format is not the one this service was given"
    if ask.sp_name_qualifier and ask.sp_name_qualifier != participant.sp:
        return "the NameID's SPNameQualifier is not the service"
    if len(ask.session_indexes) != 1:
        return "the request must name one SessionIndex"
    if not hmac.compare_digest(ask.session_indexes[0].encode(), session_index.encode()):
        return "the SessionIndex is not this session's"
    return None


class State(enum.StrEnum):
    WAITING = "waiting"          # not asked yet
    SENT = "sent"                # the browser carries our LogoutRequest to the service
    CONFIRMED = "confirmed"      # the service answered Success
    NOT_CONFIRMED = "not_confirmed"  # it answered otherwise, was skipped, or has no SLO URL


class Outcome(enum.Enum):
    SUCCESS = "success"
    PARTIAL = "partial"  # some service did not confirm


@dataclass
class Step:
    sp: str
    name: str
    format: str
    nameid: str
    state: str = State.WAITING
    request_id: str = ""

    @property
    def confirmed(self) -> bool:
        return self.state == State.CONFIRMED

    def sent(self, request_id: str) -> None:
        """Our LogoutRequest `request_id` is on its way to the service."""
        self.state, self.request_id = State.SENT, request_id

    def unreachable(self) -> None:
        """The service has no single logout (no SLO URL, or it is no longer registered)."""
        self.state = State.NOT_CONFIRMED


@dataclass
class Requester:
    """The service whose LogoutRequest started the chain: it gets the last answer."""

    sp: str
    request_id: str
    relay_state: str = ""


@dataclass
class Chain:
    session_index: str
    steps: list[Step] = field(default_factory=list)
    requester: Requester | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Chain:
        requester = data.get("requester")
        return cls(session_index=data["session_index"],
                   steps=[Step(**s) for s in data.get("steps", [])],
                   requester=Requester(**requester) if requester else None)

    def pending(self) -> Step | None:
        """The step whose answer we wait for."""
        return next((s for s in self.steps if s.state == State.SENT), None)

    def next_waiting(self) -> Step | None:
        return next((s for s in self.steps if s.state == State.WAITING), None)

    @property
    def done(self) -> bool:
        return self.pending() is None and self.next_waiting() is None

    def outcome(self) -> Outcome:
        return Outcome.SUCCESS if all(s.confirmed for s in self.steps) else Outcome.PARTIAL


def start(session: list[Participant], session_index: str, names: dict[str, str],
          requester: Requester | None) -> Chain:
    """The chain for the session's other services (every one when no service asked), in
    sign-in order. `names` are the services' names to show, by entity ID."""
    others = [p for p in session if requester is None or p.sp != requester.sp]
    return Chain(session_index=session_index, requester=requester,
                 steps=[Step(sp=p.sp, name=names.get(p.sp, p.sp), format=p.format,
                             nameid=p.nameid) for p in others])


def answer_refusal(chain: Chain, issuer: str, in_response_to: str) -> str | None:
    """Why a LogoutResponse is not the answer of the step we wait for, or None when it is."""
    step = chain.pending()
    if step is None:
        return "no service is being signed out"
    if issuer != step.sp or not hmac.compare_digest(in_response_to.encode(),
                                                    step.request_id.encode()):
        return "the answer is not from the service being signed out, or not to our request"
    return None


def record_answer(chain: Chain, success: bool) -> None:
    """The pending step's service answered; the chain moves on."""
    step = chain.pending()
    if step is not None:
        step.state = State.CONFIRMED if success else State.NOT_CONFIRMED


def skip(chain: Chain) -> None:
    """The person gave up waiting for the pending service (it never answered): it did not
    confirm, and the chain moves on. Each skip ends one step, so a chain of n steps ends after
    at most n skips."""
    record_answer(chain, success=False)
