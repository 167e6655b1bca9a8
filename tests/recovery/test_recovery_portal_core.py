"""Core of the recovery portal without HTTP: identity check, the flow's stages, the lock.
(The recovery passcodes themselves: test_recovery_passcodes.py.)"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from app.core import identity, recovery_flow, recovery_lock, users
from app.core.context import Context, Origin
from app.core.directory import LocalDirectory
from app.core.keys import Keys
from app.core.recovery_flow import Result, Stage
from app.extensions import core
from app.models import RecoveryFlow, RecoveryGuard
from tests.conftest import PASSWORD, audit_rows, make_user

ORIGIN = Origin(door="recovery", client_addr="192.0.2.7")


class CountingKeys(Keys):
    """The real keys, noting which keyed hashes were computed."""

    def __init__(self, encryption_key: str) -> None:
        super().__init__(encryption_key)
        self.purposes: list[str] = []

    def keyed_hash(self, purpose: str, value: str) -> bytes:
        self.purposes.append(purpose)
        return super().keyed_hash(purpose, value)


class CountingDirectory(LocalDirectory):
    """The real argon2 directory, counting verifications."""

    def __init__(self) -> None:
        self.calls = 0

    def check_password(self, username, password_hash, password) -> bool:
        self.calls += 1
        return super().check_password(username, password_hash, password)


def context(app, clock, **parts) -> Context:
    settings = app.config["UM2FA"]
    return Context(db=core.database(app).sessionmaker(), settings=settings,
                   keys=parts.get("keys") or Keys(settings.encryption_key),
                   directory=parts.get("directory") or LocalDirectory(), clock=clock)


def answers(**changes) -> identity.Identity:
    values = {"role": "student", "username": "alice", "dob": "2001-02-03", "id_last4": "123a",
              **changes}
    return identity.normalise(**values)


def test_normalise_rejects_bad_shapes():
    assert answers(username=" Alice ").username == "alice"
    assert answers().id_last4 == "123A"
    for bad in ({"dob": "3 Feb 2001"}, {"id_last4": "12345"}, {"username": "  "}):
        with pytest.raises(users.UserError):
            answers(**bad)


@pytest.mark.parametrize("username", ["alice", "nobody"])
def test_unknown_ids_cost_the_same_keyed_hashes(app, clock, username):
    make_user(app)
    keys = CountingKeys(app.config["UM2FA"].encryption_key)
    ctx = context(app, clock, keys=keys)
    checked = identity.check(ctx, answers(username=username, dob="1999-01-01"))
    assert keys.purposes == [users.DOB_PURPOSE, users.ID_PURPOSE]
    assert not checked.ok
    assert checked.failed == (("wrong date of birth",) if username == "alice"
                              else ("unknown user",))
    ctx.db.close()


def test_identity_check_outcomes(app, clock):
    make_user(app)
    ctx = context(app, clock)
    assert identity.check(ctx, answers()).ok
    assert identity.check(ctx, answers(role="staff")).failed == ("wrong role",)
    assert identity.check(ctx, answers(id_last4="999Z")).failed == ("wrong ID characters",)
    ctx.db.close()


@pytest.mark.parametrize(("who", "password"), [
    ("nobody", PASSWORD), ("alice-wrong-dob", PASSWORD), ("alice", "wrong-password"),
    ("alice", PASSWORD)])
def test_the_password_step_always_does_one_argon2_verification(app, clock, who, password):
    make_user(app)
    directory = CountingDirectory()
    ctx = context(app, clock, directory=directory)
    typed = answers(username="nobody") if who == "nobody" else answers(
        dob="1999-01-01" if who == "alice-wrong-dob" else "2001-02-03")
    token = recovery_flow.start(ctx, ORIGIN, typed)
    assert recovery_flow.choose(ctx, token)
    outcome = recovery_flow.finish(ctx, ORIGIN, token, password)
    assert directory.calls == 1
    expected = Result.ISSUED if (who, password) == ("alice", PASSWORD) else Result.FAILED
    assert outcome.result is expected
    assert (len(outcome.passcode) == 9) is (expected is Result.ISSUED)
    ctx.db.commit()
    ctx.db.close()


def test_stages_only_move_forward(app, clock):
    make_user(app)
    ctx = context(app, clock)
    token = recovery_flow.start(ctx, ORIGIN, answers())
    assert recovery_flow.stage(ctx, token) is Stage.IDENTIFIED
    assert recovery_flow.finish(ctx, ORIGIN, token, PASSWORD).result is Result.ENDED
    assert recovery_flow.choose(ctx, token) and not recovery_flow.choose(ctx, token)
    assert recovery_flow.finish(ctx, ORIGIN, token, PASSWORD).result is Result.ISSUED
    assert recovery_flow.finish(ctx, ORIGIN, token, PASSWORD).result is Result.ENDED
    assert recovery_flow.stage(ctx, token) is Stage.FINISHED
    assert recovery_flow.stage(ctx, "not-a-token") is None
    assert recovery_flow.stage(ctx, None) is None
    # Only a keyed hash of the browser's token is stored.
    stored = ctx.db.scalars(select(RecoveryFlow.token_hash)).all()
    assert token.encode() not in stored and len(stored[0]) == 32
    ctx.db.close()


def test_starting_again_abandons_the_previous_flow(app, clock):
    make_user(app)
    ctx = context(app, clock)
    first = recovery_flow.start(ctx, ORIGIN, answers())
    second = recovery_flow.start(ctx, ORIGIN, answers(), previous_token=first)
    assert recovery_flow.stage(ctx, first) is Stage.ABANDONED
    assert not recovery_flow.choose(ctx, first) and recovery_flow.choose(ctx, second)
    ctx.db.close()


def test_old_flows_and_guards_are_pruned(app, clock):
    make_user(app)
    ctx = context(app, clock)
    recovery_flow.start(ctx, ORIGIN, answers())
    recovery_lock.record_failure(ctx, ORIGIN, "nobody")
    ctx.db.commit()
    clock.advance(3 * 3600)
    recovery_flow.start(ctx, ORIGIN, answers())
    ctx.db.commit()
    assert len(ctx.db.scalars(select(RecoveryFlow)).all()) == 1
    assert ctx.db.scalars(select(RecoveryGuard)).all() == []
    ctx.db.close()


@pytest.mark.parametrize("settings_overrides", [{"recovery_max_failures": 5}])
def test_concurrent_failures_are_all_counted_and_lock_once(app, clock):
    """Eight failures at once, each on its own session (as on several nodes)."""
    contexts = [context(app, clock) for _ in range(8)]
    barrier = threading.Barrier(len(contexts))
    results, errors = [], []

    def fail(ctx: Context) -> None:
        try:
            barrier.wait(timeout=10)
            results.append(recovery_lock.record_failure(ctx, ORIGIN, "Target"))
            ctx.db.commit()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            ctx.db.close()

    threads = [threading.Thread(target=fail, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == [] and len(results) == 8
    assert results.count(True) == 1
    check = context(app, clock)
    # per ID and address: locked at 5, then 3 more; per ID from all addresses: all 8
    failures = sorted(g.failures for g in check.db.scalars(select(RecoveryGuard)))
    assert failures == [3, 8] and recovery_lock.is_locked(check, "target", "192.0.2.7")
    check.db.close()
    [lock] = audit_rows(app, "recovery.lock")
    assert lock.client_addr == "192.0.2.7"
