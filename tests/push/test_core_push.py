"""app/core/push/ where the device API does not reach: starting a push, following it from
the login side (status, statuses, complete), device choice and the calls' edge cases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.core import devices, push, users
from app.core.context import Origin
from app.models import PushRequest
from tests.conftest import TEST_ORIGIN, audit_rows, make_user
from tests.helpers.push import answer, new_phone
from tests.peers.live import free_port
from tests.peers.push_device import answer_string, code_from_link


def test_the_activation_link_carries_the_code_in_the_fragment():
    link = push.activation_link("https://2fa.um.edu.mo/", "abc_DEF-1")
    assert link == "https://2fa.um.edu.mo/app/#activate=abc_DEF-1"
    assert code_from_link(link) == "abc_DEF-1"


def test_start_needs_an_active_push_device_of_the_user(app, ctx, alice):
    with pytest.raises(push.PushError, match="cannot receive pushes"):
        push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    totp_device, _ = devices.add_totp(ctx, TEST_ORIGIN, alice, "Authenticator",
                                      device_type="mobile")
    with pytest.raises(push.PushError, match="cannot receive pushes"):
        push.start(ctx, TEST_ORIGIN, alice, totp_device, service="myUM")
    pending = devices.begin_enrolment(ctx, TEST_ORIGIN, alice, "mobile", "ios", kind="push")
    assert not push.can_push(pending)
    with pytest.raises(push.PushError, match="cannot receive pushes"):
        push.start(ctx, TEST_ORIGIN, alice, pending, service="myUM")
    ctx.db.commit()
    make_user(app, "bob")
    _, bobs = new_phone(ctx, "bob")
    with pytest.raises(push.PushError, match="cannot receive pushes"):
        push.start(ctx, TEST_ORIGIN, alice, ctx.db.get(devices.Device, bobs), service="x")


def test_start_picks_the_default_push_device(ctx, alice):
    _, first = new_phone(ctx, name="Old phone")
    _, second = new_phone(ctx, name="New phone")
    assert [d.id for d in push.push_devices(alice)] == [first, second]
    devices.make_default(ctx, TEST_ORIGIN, alice, second)
    ctx.db.commit()
    assert [d.id for d in push.push_devices(alice)] == [second, first]
    assert push.start(ctx, TEST_ORIGIN, alice, None, service="myUM").device_id == second
    chosen = push.start(ctx, TEST_ORIGIN, alice, ctx.db.get(devices.Device, first), service="x")
    assert chosen.device_id == first


def test_a_push_records_who_signs_in_to_what_from_where(ctx, alice, clock):
    new_phone(ctx)
    origin = Origin(door="sso", client_addr="203.0.113.5")
    request = push.start(ctx, origin, alice, None, service="x" * 300, timeout=30)
    assert request.status == "pending" and len(request.number) == 3
    assert request.door == "sso" and request.client_addr == "203.0.113.5"
    assert request.service == "x" * 200
    assert request.expires_at == request.created_at + timedelta(seconds=30)
    described = push.describe(request, "alice")
    assert described["service"] == "x" * 200 and described["verified"] is True
    assert request.number not in described.values()
    [row] = audit_rows_in(ctx, "push.start")
    assert row["result"] == "ok" and row["device"] == "Android mobile phone"


def audit_rows_in(ctx, action: str) -> list[dict]:
    ctx.db.commit()
    from sqlalchemy import select

    from app.models import AuditEvent

    return [{"result": r.result, "device": r.device, "detail": r.detail}
            for r in ctx.db.scalars(select(AuditEvent).where(AuditEvent.action == action))]


def test_status_follows_a_push_and_expires_it(ctx, alice, clock):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    public_id = request.public_id
    assert push.status(ctx, alice, public_id) == "pending"
    clock.advance(60)
    assert push.status(ctx, alice, public_id) == "expired"
    ctx.db.commit()
    assert ctx.db.get(PushRequest, request.id).status == "expired"  # written, not just shown
    assert push.status(ctx, alice, "no-such-push") == "expired"
    with pytest.raises(push.AlreadyAnswered, match="expired"):
        answer(ctx, phone, device_id, public_id, "approve", request.number)


def test_status_of_another_users_push_reveals_nothing(app, ctx, alice):
    new_phone(ctx)
    make_user(app, "bob")
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    bob = users.get(ctx, "bob")
    assert push.find(ctx, bob, request.public_id) is None
    assert push.status(ctx, bob, request.public_id) == "expired"


def test_statuses_answers_many_in_one_call(ctx, alice, clock):
    phone, device_id = new_phone(ctx)
    assert push.statuses(ctx, []) == {}
    a = push.start(ctx, TEST_ORIGIN, alice, None, service="vpn").public_id
    clock.advance(30)
    b = push.start(ctx, TEST_ORIGIN, alice, None, service="vpn").public_id
    answer(ctx, phone, device_id, b, "deny")
    assert push.statuses(ctx, [a, b, "unknown"]) == {a: "pending", b: "denied"}
    clock.advance(31)
    assert push.statuses(ctx, [a, b]) == {a: "expired", b: "denied"}


def test_complete_uses_an_approved_push_once(ctx, alice):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    public_id, number = request.public_id, request.number
    assert not push.complete(ctx, TEST_ORIGIN, alice, public_id)  # still pending
    assert push.status(ctx, alice, public_id) == "pending"  # not a second factor yet
    assert answer(ctx, phone, device_id, public_id, "approve", number) == "approved"
    assert push.status(ctx, alice, public_id) == "approved"
    alice.failed_factor_count = 4
    ctx.db.flush()
    assert push.complete(ctx, TEST_ORIGIN, alice, public_id, action="stepup")
    assert alice.failed_factor_count == 0
    assert not push.complete(ctx, TEST_ORIGIN, alice, public_id)
    assert push.status(ctx, alice, public_id) == "used"
    assert [r["detail"] for r in audit_rows_in(ctx, "stepup")] == ["push"]


def test_complete_refuses_other_outcomes_and_other_users(app, ctx, alice, clock):
    phone, device_id = new_phone(ctx)
    make_user(app, "bob")
    bob = users.get(ctx, "bob")
    outcomes = {}
    for decision in ("deny", "fraud"):
        request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
        outcomes[request.public_id] = answer(ctx, phone, device_id, request.public_id,
                                             decision)
    assert sorted(outcomes.values()) == ["denied", "fraud"]
    alice.push_blocked_until = None  # the help desk lifts the fraud block
    ctx.db.flush()
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    answer(ctx, phone, device_id, request.public_id, "approve", request.number)
    assert not push.complete(ctx, TEST_ORIGIN, bob, request.public_id)
    for public_id in outcomes:
        assert not push.complete(ctx, TEST_ORIGIN, alice, public_id)
    assert push.status(ctx, alice, "unknown") == "expired"
    assert push.complete(ctx, TEST_ORIGIN, alice, request.public_id)


def test_answers_are_checked_in_core_too(ctx, alice):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    device = ctx.db.get(devices.Device, device_id)
    with pytest.raises(push.PushError, match="approve, deny or fraud"):
        push.answer(ctx, TEST_ORIGIN, device, request.public_id, "maybe", "",
                    phone.sign(answer_string(request.public_id, "maybe", "")))
    with pytest.raises(push.UnknownRequest):
        answer(ctx, phone, device_id, "nope", "deny")
    with pytest.raises(push.BadAnswerSignature):
        push.answer(ctx, TEST_ORIGIN, device, request.public_id, "deny", "", "AAAA")
    assert answer(ctx, phone, device_id, request.public_id, "approve",
                  f" {request.number} ") == "approved"  # spaces typed around it are fine


@pytest.mark.parametrize("device_id, timestamp", [
    ("0", "1"), ("-1", "1"), ("\u0661", "1"), ("1" * 19, "1"), ("", "1"),
    ("1", "\u0661\u0662"), ("1", "-5"), ("1", "1e9"), ("1", ""),
])
def test_authenticate_call_refuses_odd_headers_cleanly(ctx, alice, device_id, timestamp):
    new_phone(ctx)
    with pytest.raises(push.DeviceAuthError):
        push.authenticate_call(ctx, device_id, timestamp, "AAAA", "GET", "/x", b"")


def test_a_removed_device_cannot_be_pushed_to_or_answer(ctx, alice):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    ctx.db.commit()
    ctx.db.expunge_all()  # a fresh request (devices.remove trips over a loaded collection)
    alice = users.get(ctx, "alice")
    devices.remove(ctx, TEST_ORIGIN, alice, device_id, last_confirmed=True)
    ctx.db.commit()
    with pytest.raises(push.PushError, match="cannot receive pushes"):
        push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    stamp = str(int(ctx.clock()))
    with pytest.raises(push.DeviceAuthError, match="unknown or inactive"):
        push.authenticate_call(ctx, str(device_id), stamp, phone.sign("x"), "GET", "/", b"")
    assert request.public_id


@pytest.mark.parametrize("settings_overrides", [{
    "smtp_host": "127.0.0.1", "smtp_port": free_port(), "smtp_from": "2fa@um.example.edu",
    "smtp_timeout": 2, "admin_emails": "sec@um.example.edu", "push_fraud_block_minutes": 5}])
def test_fraud_with_the_mail_server_down_still_blocks(app, ctx, alice, clock):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="myUM")
    assert answer(ctx, phone, device_id, request.public_id, "fraud") == "fraud"
    assert push.is_blocked(ctx, alice)
    assert alice.push_blocked_until == ctx.now() + timedelta(minutes=5)
    ctx.db.commit()
    assert [r.result for r in audit_rows(app, "push.fraud_notify")] == ["fail"]
    clock.advance(5 * 60)
    assert not push.is_blocked(ctx, alice)


def test_an_approval_does_not_let_a_user_locked_meanwhile_in(app, ctx, alice):
    phone, device_id = new_phone(ctx)
    request = push.start(ctx, TEST_ORIGIN, alice, None, service="vpn")
    assert answer(ctx, phone, device_id, request.public_id, "approve",
                  request.number) == "approved"
    ctx.db.commit()
    users.lock(ctx, TEST_ORIGIN, "alice")  # e.g. wrong passcodes at the RADIUS door
    assert not push.complete(ctx, TEST_ORIGIN, alice, request.public_id)
    ctx.db.commit()
    assert [r.result for r in audit_rows(app, "factor")] == ["locked"]
    users.unlock(ctx, TEST_ORIGIN, "alice")
    assert push.complete(ctx, TEST_ORIGIN, alice, request.public_id)


def test_concurrent_starts_keep_the_pending_limit(app, ctx, alice, database_url):
    """Two nodes start pushes for the same user at once: the count and the insert of one wait
    for the other's commit, so the user never has more than push_max_pending waiting."""
    import threading

    from sqlalchemy import func, select

    from app.extensions import core

    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: the race is PostgreSQL's")
    new_phone(ctx)
    for _ in range(2):
        push.start(ctx, TEST_ORIGIN, users.get(ctx, "alice"), None, service="x")
    ctx.db.commit()
    push.start(ctx, TEST_ORIGIN, users.get(ctx, "alice"), None, service="x")  # uncommitted
    outcome: list[str] = []

    def other_node() -> None:
        with app.app_context():
            other = core.context()
            try:
                push.start(other, TEST_ORIGIN, users.get(other, "alice"), None, service="y")
                outcome.append("started")
            except push.PushError as exc:
                outcome.append(str(exc))
            finally:
                other.db.commit()
                other.db.close()

    thread = threading.Thread(target=other_node)
    thread.start()
    thread.join(timeout=1)  # waits on our lock (it would finish at once without it)
    ctx.db.commit()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert outcome == [push.TOO_MANY]
    assert ctx.db.scalar(select(func.count()).select_from(PushRequest).where(
        PushRequest.status == "pending")) == 3
