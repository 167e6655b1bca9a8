"""Every wrong answer gets the same answer, at the same step, and no passcode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from app.core import users
from app.models import RecoveryPasscode, User
from tests.conftest import TEST_ORIGIN, audit_rows, committed, make_user
from tests.helpers import recovery_steps as steps

P = steps.PREFIX


def lock_account(app) -> None:
    with committed(app) as c:
        users.lock(c, TEST_ORIGIN, "alice")


def lock_out_second_factor(app) -> None:
    with committed(app) as c:
        c.db.execute(update(User).where(User.username == "alice")
                     .values(locked_at=datetime.now(UTC)))


CASES = {
    "unknown user": ({"username": "nobody"}, None),
    "wrong role": ({"role": "staff"}, None),
    "wrong date of birth": ({"dob": "2001-03-02"}, None),
    "wrong ID characters": ({"id_last4": "123B"}, None),
    "wrong password": ({"password_": "not-the-password"}, None),
    "account locked": ({}, lock_account),
    "second factor locked out": ({}, lock_out_second_factor),
}


def run_case(app, name: str) -> list:
    answers, prepare = CASES[name]
    if prepare:
        prepare(app)
    client = app.test_client()
    responses = steps.walk(client, **answers)
    pages = [client.get(f"{P}/")]  # what the browser sees after the verdict
    return responses + pages


def outward(responses: list) -> list:
    """All a person (or attacker) can observe: statuses, redirects, bodies."""
    return [(r.status_code, r.headers.get("Location"), steps.masked(r)) for r in responses]


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_gets_the_generic_answer_at_the_password_step(app, case):
    make_user(app)
    step2, step3, step4, _ = run_case(app, case)
    assert (step2.status_code, step2.headers["Location"]) == (303, f"{P}/options")
    assert (step3.status_code, step3.headers["Location"]) == (303, f"{P}/password")
    body = step4.get_data(as_text=True)
    assert step4.status_code == 401
    assert "We could not verify your identity" in body and "Start again" in body
    assert "recovery-passcode" not in body
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(RecoveryPasscode)) == 0
    [verify] = audit_rows(app, "recovery.verify")
    assert verify.result == "fail"
    reason = "account locked" if case == "second factor locked out" else case
    assert reason in verify.detail


def test_unknown_user_and_wrong_date_of_birth_cannot_be_told_apart(app):
    make_user(app)
    unknown = outward(run_case(app, "unknown user"))
    wrong_dob = outward(run_case(app, "wrong date of birth"))
    assert unknown == wrong_dob
    # The per-request values were masked, not absent.
    assert "<csrf>" in unknown[3][2]


@pytest.mark.parametrize("settings_overrides", [{"recovery_max_failures": 100}])
def test_every_failure_looks_the_same(app):
    make_user(app)
    answers = {}
    for case in ("unknown user", "wrong role", "wrong date of birth", "wrong ID characters",
                 "wrong password", "account locked"):
        answers[case] = outward(run_case(app, case))
    reference = answers.pop("unknown user")
    for case, seen in answers.items():
        assert seen == reference, case


def test_the_pages_between_do_not_differ_either(app):
    make_user(app)
    pages = []
    for answers in ({"username": "nobody"}, {"dob": "1970-01-01"}, {}):
        client = app.test_client()
        steps.identify(client, **{**steps.ALICE, **answers})
        options = client.get(f"{P}/options")
        steps.choose(client)
        pages.append([steps.masked(options), steps.masked(client.get(f"{P}/password"))])
    # The right answers too: until the password step, nothing differs.
    assert pages[0] == pages[1] == pages[2]


def test_the_failure_audit_names_every_wrong_answer(app):
    make_user(app)
    steps.walk(app.test_client(), role="staff", dob="1999-01-01", password_="nope-nope")
    [verify] = audit_rows(app, "recovery.verify")
    for reason in ("wrong role", "wrong date of birth", "wrong password"):
        assert reason in verify.detail
    assert "wrong ID characters" not in verify.detail
