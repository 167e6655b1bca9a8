"""Run something once the current transaction is committed, and never if it is not."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction


def after_commit(session: Session, job: Callable[[], None]) -> None:
    """Call `job` after the session's current outermost transaction commits.

    Armed until that transaction ends: after_commit also fires when a savepoint is released,
    and a rolled-back (or closed) transaction must not leave the job waiting for the session's
    next commit. The listeners stay as no-ops once disarmed: removing them while the session
    dispatches its events is not safe."""
    armed = [True]

    def _after_commit(committed: Session) -> None:
        if armed[0] and not committed.in_nested_transaction():
            armed[0] = False
            job()

    def _after_transaction_end(_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            armed[0] = False

    event.listen(session, "after_commit", _after_commit)
    event.listen(session, "after_transaction_end", _after_transaction_end)
