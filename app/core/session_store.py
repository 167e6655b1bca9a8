"""Where browser sessions are kept: the database (the default) or Redis.

Records are opaque here: a keyed hash of the session id, the user's id (to end all of a user's
sessions at once), an encrypted blob and the two times. app/core/browser_sessions.py makes and
reads them.
"""

from __future__ import annotations

import base64
import json
import secrets
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.core import redis_outage, subjects
from app.core.after_commit import after_commit
from app.db import Prepared
from app.models import WebSession

_T = WebSession.__table__
# Every web request reads its session, and most write it: plain statements, compiled once.
# The session is read with its user and their devices (subjects.Subject): a signed-in request
# needs both, and so reads them in one round trip.
_SESSION_COLUMNS = (_T.c.user_id, _T.c.data, _T.c.created_at, _T.c.expires_at)
_LOAD = Prepared(subjects.select_with_subject(_T, _T.c.user_id, *_SESSION_COLUMNS).where(
    _T.c.key == bindparam("key")))
_UPDATE = update(_T).where(_T.c.key == bindparam("k"))
_REKEY = Prepared(update(_T).where(_T.c.key == bindparam("old")).values(
    key=bindparam("key"), user_id=bindparam("user_id"), data=bindparam("data"),
    created_at=bindparam("created_at"), expires_at=bindparam("expires_at")))
_DELETE = delete(_T).where(_T.c.key == bindparam("key"))
PURGE_ONE_IN = 50  # new sessions per purge of expired ones, on average
# user id, blob, created, expires; and the user, when the store reads it with the session
Found = tuple[int | None, bytes, datetime, datetime, "subjects.Subject | None"]


class SessionStore(Protocol):
    in_transaction: bool

    def load(self, db: Session, key: bytes, now: datetime) -> Found | None: ...

    def save(self, db: Session, key: bytes, user_id: int | None, blob: bytes,
             created_at: datetime, expires_at: datetime, now: datetime, *, new: bool) -> None:
        """Insert a new session, or update one that still exists (a session ended meanwhile,
        e.g. by a sign-out in another tab, is not brought back)."""

    def replace(self, db: Session, old: bytes, key: bytes, user_id: int | None, blob: bytes,
                created_at: datetime, expires_at: datetime, now: datetime) -> None:
        """The session under a new id (after the password, after a second factor): the old
        record is gone and the new one saved, as `delete` then a new `save` would."""

    def delete(self, db: Session, key: bytes) -> None: ...

    def end_for_user(self, db: Session, user_id: int, keep: bytes | None) -> None: ...

    def count_for_user(self, db: Session, user_id: int, now: datetime) -> int: ...


class DatabaseSessions:
    in_transaction = True  # written in the caller's transaction

    def load(self, db, key, now):
        rows = _LOAD.execute(db.connection(), {"key": key}).rows
        if not rows or rows[0][3] <= now:
            return None
        user_id, data, created_at, expires_at = rows[0][:4]
        return (user_id, data, created_at, expires_at,
                subjects.subject_of(rows, skip=len(_SESSION_COLUMNS)))

    def save(self, db, key, user_id, blob, created_at, expires_at, now, *, new):
        if new:
            if secrets.randbelow(PURGE_ONE_IN) == 0:  # now and then, drop the expired ones
                db.execute(delete(_T).where(_T.c.expires_at <= now))
            db.execute(insert(_T), {"key": key, "user_id": user_id, "data": blob,
                                    "created_at": created_at, "expires_at": expires_at})
        else:
            db.execute(_UPDATE, {"k": key, "user_id": user_id, "data": blob,
                                 "expires_at": expires_at})

    def replace(self, db, old, key, user_id, blob, created_at, expires_at, now):
        """One UPDATE of the row's key and contents. No row: the session was ended meanwhile
        (another request's transaction committed first), and stays ended."""
        _REKEY.execute(db.connection(), {
            "old": old, "key": key, "user_id": user_id, "data": blob,
            "created_at": created_at, "expires_at": expires_at})

    def delete(self, db, key):
        db.execute(_DELETE, {"key": key})

    def count_for_user(self, db, user_id, now):
        return db.execute(select(func.count()).select_from(_T).where(
            _T.c.user_id == user_id, _T.c.expires_at > now)).scalar_one()

    def end_for_user(self, db, user_id, keep):
        query = delete(_T).where(_T.c.user_id == user_id)
        if keep is not None:
            query = query.where(_T.c.key != keep)
        db.execute(query)


# KEYS: the old session, the new one, [the user's set]; ARGV: the record, its TTL, the new and
# the old session's member names. 0 when the old session is gone (nothing written).
_REDIS_REPLACE = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
if #KEYS > 2 then
  redis.call('SREM', KEYS[3], ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[3])
  if redis.call('TTL', KEYS[3]) < tonumber(ARGV[2]) then
    redis.call('EXPIRE', KEYS[3], ARGV[2])
  end
end
return 1
"""
# KEYS: the user's set; ARGV: the sessions' key prefix, the member to keep ("" for none).
_REDIS_END_ALL = """
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if member ~= ARGV[2] then
    redis.call('DEL', ARGV[1] .. member)
    redis.call('SREM', KEYS[1], member)
  end
end
return 0
"""


class RedisSessions:
    """One Redis key per session (expiring with it) and a set of a user's session keys."""

    in_transaction = False  # written at once, outside any database transaction

    def __init__(self, url: str, prefix: str = "") -> None:
        self._client = redis_outage.client(url, timeout=1)
        self._prefix = prefix + "um2fa:session:"
        self._replace = self._client.register_script(_REDIS_REPLACE)
        self._end_all = self._client.register_script(_REDIS_END_ALL)

    def _key(self, key: bytes) -> str:
        return self._prefix + key.hex()

    def _user(self, user_id: int) -> str:
        return f"{self._prefix}user:{user_id}"

    def load(self, db, key, now):
        raw = self._client.get(self._key(key))
        if raw is None:
            return None
        item = json.loads(raw)
        expires_at = datetime.fromtimestamp(item["expires"], UTC)
        if expires_at <= now:
            return None
        return (item["user"], base64.b64decode(item["data"]),
                datetime.fromtimestamp(item["created"], UTC), expires_at, None)

    def save(self, db, key, user_id, blob, created_at, expires_at, now, *, new):
        ttl = max(1, int((expires_at - now).total_seconds()))
        item = self._item(user_id, blob, created_at, expires_at)
        pipe = self._client.pipeline()
        pipe.set(self._key(key), item, ex=ttl, nx=new, xx=not new)
        if user_id is not None:
            pipe.sadd(self._user(user_id), key.hex())
            pipe.expire(self._user(user_id), ttl, gt=True)
            pipe.expire(self._user(user_id), ttl, nx=True)
        pipe.execute()

    def replace(self, db, old, key, user_id, blob, created_at, expires_at, now):
        """In one script: the new session only if the old one was still there (one ended
        meanwhile stays ended; `end_for_user` is one script too, so either comes first)."""
        ttl = max(1, int((expires_at - now).total_seconds()))
        keys = [self._key(old), self._key(key)]
        if user_id is not None:
            keys.append(self._user(user_id))
        self._replace(keys=keys, args=[self._item(user_id, blob, created_at, expires_at), ttl,
                                       key.hex(), old.hex()])

    def delete(self, db, key):
        self._client.delete(self._key(key))

    def count_for_user(self, db, user_id, now):
        members = [m.decode() for m in self._client.smembers(self._user(user_id))]
        if not members:
            return 0
        return int(self._client.exists(*(self._prefix + m for m in members)))

    def end_for_user(self, db, user_id, keep):
        def job() -> None:
            self._end_all(keys=[self._user(user_id)],
                          args=[self._prefix, keep.hex() if keep else ""])

        after_commit(db, job)

    @staticmethod
    def _item(user_id: int | None, blob: bytes, created_at: datetime,
              expires_at: datetime) -> str:
        return json.dumps({"user": user_id, "data": base64.b64encode(blob).decode(),
                           "created": created_at.timestamp(),
                           "expires": expires_at.timestamp()})


def make_store(kind: str, redis_url: str, prefix: str) -> SessionStore:
    if kind == "redis":
        return RedisSessions(redis_url, prefix)
    return DatabaseSessions()
