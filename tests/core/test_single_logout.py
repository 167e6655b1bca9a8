"""app/core/single_logout.py: when a LogoutRequest matches the session, and the chain."""

from __future__ import annotations

import json

import pytest

from app.core import single_logout as slo

PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
A = slo.Participant("https://a.example/sp", PERSISTENT, "nameid-at-a")
B = slo.Participant("https://b.example/sp", PERSISTENT, "nameid-at-b")
C = slo.Participant("https://c.example/sp", PERSISTENT, "nameid-at-c")
INDEX = "_session-index"


def ask(**changes) -> slo.LogoutAsk:
    fields = {"issuer": A.sp, "nameid": A.nameid, "nameid_format": PERSISTENT,
              "sp_name_qualifier": A.sp, "session_indexes": (INDEX,)}
    return slo.LogoutAsk(**{**fields, **changes})


def test_a_request_naming_what_the_sp_was_given_in_this_session_matches():
    assert slo.refusal([A, B], INDEX, ask()) is None
    # Format and SPNameQualifier are optional in the request
    assert slo.refusal([A, B], INDEX, ask(nameid_format="", sp_name_qualifier="")) is None


@pytest.mark.parametrize(("changes", "session"), [
    ({"issuer": C.sp}, [A, B]),                        # an SP the session never signed in to
    ({"nameid": B.nameid}, [A, B]),                    # another SP's NameID
    ({"nameid": "made-up"}, [A, B]),
    ({"nameid": ""}, [A, B]),
    ({"nameid_format": "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}, [A]),
    ({"sp_name_qualifier": B.sp}, [A]),
    ({"session_indexes": ()}, [A]),                    # missing SessionIndex
    ({"session_indexes": ("_old",)}, [A]),             # an older session's
    ({"session_indexes": (INDEX, "_other")}, [A]),     # exactly one
    ({}, []),                                          # the session signed in nowhere
])
def test_anything_else_is_refused_with_a_reason_that_names_no_nameid(changes, session):
    reason = slo.refusal(session, INDEX, ask(**changes))
    assert reason
    assert A.nameid not in reason and "made-up" not in reason


def test_a_session_without_an_index_matches_nothing():
    assert slo.refusal([A], "", ask(session_indexes=("",)))


def test_the_chain_asks_the_other_services_in_sign_in_order_and_survives_the_session():
    chain = slo.start([A, B, C], INDEX, {B.sp: "Library"},
                      slo.Requester(sp=A.sp, request_id="_req", relay_state="r"))
    assert [s.sp for s in chain.steps] == [B.sp, C.sp]
    assert [s.name for s in chain.steps] == ["Library", C.sp]
    chain.next_waiting().sent("_to-b")
    chain = slo.Chain.from_dict(json.loads(json.dumps(chain.to_dict())))  # as the session
    assert chain.pending().sp == B.sp and chain.requester.request_id == "_req"
    assert slo.answer_refusal(chain, C.sp, "_to-b")          # not the pending service
    assert slo.answer_refusal(chain, B.sp, "_other")          # not our request
    assert slo.answer_refusal(chain, B.sp, "_to-b") is None
    slo.record_answer(chain, success=True)
    assert chain.steps[0].confirmed and chain.next_waiting().sp == C.sp
    chain.next_waiting().unreachable()                         # no SLO URL
    assert chain.done and chain.outcome() is slo.Outcome.PARTIAL


def test_idp_initiated_sign_out_asks_every_service_and_skips_end_it():
    chain = slo.start([A, B], INDEX, {}, None)
    assert [s.sp for s in chain.steps] == [A.sp, B.sp]
    for turn in range(len(chain.steps)):  # each skip ends one step
        chain.next_waiting().sent(f"_id{turn}")
        slo.skip(chain)
    assert chain.done and not any(s.confirmed for s in chain.steps)
    assert slo.answer_refusal(chain, A.sp, "_id0")  # nothing pending any more


def test_a_chain_where_everyone_confirmed_is_a_success():
    chain = slo.start([A], INDEX, {}, None)
    chain.next_waiting().sent("_x")
    slo.record_answer(chain, success=True)
    assert chain.outcome() is slo.Outcome.SUCCESS
    assert slo.start([], INDEX, {}, None).outcome() is slo.Outcome.SUCCESS
