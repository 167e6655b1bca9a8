"""Failure counters that every node shares: Redis when `UM2FA_REDIS_URL` is set, the database
otherwise (app/bootstrap.py chooses). The VPN door counts failed passwords per username and per
NAS + Calling-Station-Id, and pushes not approved per user, here (app/core/radius_auth/
guessing.py and pushes.py decide what the counts mean).

A counter is a number of failures and the time of the last one; it is forgotten `window`
seconds after its last failure. Keys are stored as keyed hashes: a typed username may be a
password typed in the wrong field. With Redis, the counter is one hash with a TTL; while Redis
cannot be reached the database takes over (app/core/redis_outage.py: logged, and Redis asked
again after a back-off), so the limits hold, per database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import bindparam, case, delete, select, update
from sqlalchemy.exc import IntegrityError

from app.core import redis_outage
from app.db import Prepared
from app.models import AttemptCounter

if TYPE_CHECKING:
    from app.core.context import Context

log = logging.getLogger("um2fa.attempts")

PURPOSE = "attempt-counter"


@dataclass(frozen=True)
class Count:
    failures: int = 0
    last: float = 0.0  # Unix time of the last failure


class Attempts(Protocol):
    def get(self, ctx: Context, keys: Sequence[str]) -> list[Count]: ...

    def add(self, ctx: Context, keys: Sequence[str], window: int) -> list[Count]:
        """One more failure for each key; the counts after it."""
        ...

    def clear(self, ctx: Context, key: str) -> None: ...


def _hash(ctx: Context, key: str) -> bytes:
    return ctx.keys.keyed_hash(PURPOSE, key)


class DatabaseAttempts:
    """Counters in `attempt_counters`, written in the request's transaction: plain conditional
    UPDATEs, so two nodes counting at once add up."""

    def get(self, ctx: Context, keys: Sequence[str]) -> list[Count]:
        hashes = [_hash(ctx, key) for key in keys]
        now = ctx.now()
        params: dict[str, Any] = {f"k{i}": h for i, h in enumerate(hashes)}
        params["now"] = now
        rows = {key_hash: Count(failures, last_at.timestamp()) for key_hash, failures, last_at
                in _counts_of(len(hashes)).execute(ctx.db.connection(), params).rows}
        return [rows.get(h, Count()) for h in hashes]

    def add(self, ctx: Context, keys: Sequence[str], window: int) -> list[Count]:
        return [self._add_one(ctx, _hash(ctx, key), window) for key in keys]

    @staticmethod
    def _add_one(ctx: Context, key_hash: bytes, window: int) -> Count:
        now = ctx.now()
        table = AttemptCounter.__table__
        bump = (update(table).where(table.c.key_hash == key_hash)
                .values(failures=_restart_or_add(table, now), last_at=now,
                        expires_at=now + timedelta(seconds=window))
                .returning(table.c.failures))
        for _attempt in range(2):
            found = ctx.db.execute(bump).scalar()
            if found is not None:
                return Count(found, now.timestamp())
            try:
                with ctx.db.begin_nested():
                    ctx.db.execute(table.insert().values(
                        key_hash=key_hash, failures=1, last_at=now,
                        expires_at=now + timedelta(seconds=window)))
                return Count(1, now.timestamp())
            except IntegrityError:
                continue  # another request inserted it first: count on its row
        raise RuntimeError("could not count a failure")  # pragma: no cover

    def clear(self, ctx: Context, key: str) -> None:
        ctx.db.execute(delete(AttemptCounter).where(AttemptCounter.key_hash == _hash(ctx, key))
                       .execution_options(synchronize_session=False))


_COUNTS: dict[int, Prepared] = {}


def _counts_of(keys: int) -> Prepared:
    """The read of `keys` counters (a VPN password reads 1 or 2 each time): prepared once, run
    without the ORM."""
    prepared = _COUNTS.get(keys)
    if prepared is None:
        table = AttemptCounter.__table__
        prepared = _COUNTS[keys] = Prepared(
            select(table.c.key_hash, table.c.failures, table.c.last_at)
            .where(table.c.key_hash.in_([bindparam(f"k{i}", type_=table.c.key_hash.type)
                                         for i in range(keys)]),
                   table.c.expires_at > bindparam("now", type_=table.c.expires_at.type)))
    return prepared


def _restart_or_add(table, now: datetime):
    """A counter forgotten (expired, not yet purged) starts again at 1."""
    return case((table.c.expires_at <= now, 1), else_=table.c.failures + 1)


def purge(ctx: Context) -> int:
    """Delete the database's counters that have been forgotten."""
    return ctx.db.execute(delete(AttemptCounter).where(AttemptCounter.expires_at <= ctx.now())
                          .execution_options(synchronize_session=False)).rowcount or 0


class RedisAttempts:
    """Counters in Redis (one hash per key: failures and the last one's time, with a TTL)."""

    def __init__(self, url: str, prefix: str = "",
                 fallback: Attempts | None = None) -> None:
        self._client = redis_outage.client(url)
        self._errors = redis_outage.errors()
        self._prefix = f"{prefix}:um2fa:attempts:" if prefix else "um2fa:attempts:"
        self._fallback = fallback or DatabaseAttempts()
        self.outage = redis_outage.Outage(log, "failure counters", "counting in the database")

    def _name(self, ctx: Context, key: str) -> str:
        return self._prefix + _hash(ctx, key).hex()

    def get(self, ctx: Context, keys: Sequence[str]) -> list[Count]:
        if self.outage.asking():
            try:
                pipe = self._client.pipeline(transaction=False)
                for key in keys:
                    pipe.hmget(self._name(ctx, key), "n", "t")
                replies = pipe.execute()
            except self._errors as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return [Count(int(n), float(t)) if n is not None and t is not None else Count()
                        for n, t in replies]
        return self._fallback.get(ctx, keys)

    def add(self, ctx: Context, keys: Sequence[str], window: int) -> list[Count]:
        if self.outage.asking():
            now = ctx.clock()
            try:
                pipe = self._client.pipeline(transaction=True)
                for key in keys:
                    name = self._name(ctx, key)
                    pipe.hincrby(name, "n", 1)
                    pipe.hset(name, "t", repr(now))
                    pipe.expire(name, window)
                results = pipe.execute()
            except self._errors as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return [Count(int(results[3 * i]), now) for i in range(len(keys))]
        return self._fallback.add(ctx, keys, window)

    def clear(self, ctx: Context, key: str) -> None:
        if self.outage.asking():
            try:
                self._client.delete(self._name(ctx, key))
            except self._errors as exc:
                self.outage.failed(exc)
            else:
                self.outage.answered()
                return
        self._fallback.clear(ctx, key)


def make_attempts(redis_url: str, prefix: str = "") -> Attempts:
    return RedisAttempts(redis_url, prefix) if redis_url else DatabaseAttempts()
