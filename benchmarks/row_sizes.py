"""What each user costs in PostgreSQL and Redis (docs/capacity.md): bytes per row, indexes
included, of the tables that grow with users and logins, and bytes per Redis key.

    .venv/bin/python -m benchmarks.row_sizes [--users 10000] [--json FILE]
        [--database-url postgresql://...] [--redis-url redis://127.0.0.1:6379/0]

PostgreSQL: a fresh schema at the migrations' head (dropped at the end) gets --users users as
`um2fa users import` leaves them (names, email, an argon2id hash as we store it, the keyed
hashes of date of birth and ID), one TOTP device each (the secret encrypted with the instance
key as the code does) and a companion-app device for one in three (a P-256 public key and a
Web Push subscription), a security key for one in twenty, one browser session each (the
encrypted record of a session that has done SSO to two service providers), one remembered
browser for one in two, and one push request per user (what each push login adds). Reported
per table: rows, pg_total_relation_size (table, indexes, TOAST) and bytes per row. The audit's
own size is measured on 10 million rows by benchmarks/audit_purge.py.

Redis: keys named as the service names them, under a prefix of this run's own (deleted at the
end): a rate-limit counter (app/web/limits.py's fixed window: one string per address or user,
per limit, living one window), a browser session with `UM2FA_SESSION_STORE=redis` (the same
encrypted record, and the user's set of sessions), and a RADIUS attempts counter (a hash).
Reported: MEMORY USAGE per key (bytes, Redis's own accounting of key, value and overhead)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import fresh_schema

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
ARGON2_AS_STORED = ("$argon2id$v=19$m=65536,t=3,p=4$3DzxbtPyYdIJkCVMk8kBgA$P4b8h2QhpwdnTGD0mwoqy"
                    "PJeir+ABrctq2Qm6hZi4dg")
TABLES = ("users", "devices", "webauthn_credentials", "web_sessions", "remembered_browsers",
          "push_requests")
CHUNK = 2000


def session_data(user_id: int) -> dict[str, Any]:
    """A browser session after SSO to two service providers (app/web: what it keeps)."""
    return {"uid": user_id, "auth_at": time.time(), "mfa_at": time.time(),
            "mfa_device": 1000 + user_id, "via": "totp", "lang": "zh_Hant",
            "csrf_token": secrets.token_hex(20),
            "saml_session": "_" + secrets.token_hex(16),
            "saml_sps": [{"sp": "https://myum.um.edu.mo/shibboleth", "nameid": secrets.token_hex(
                16), "format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                "index": "_" + secrets.token_hex(16)},
                {"sp": "https://moodle.um.edu.mo/simplesaml/module.php/saml/sp/metadata.php",
                 "nameid": secrets.token_hex(16),
                 "format": "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
                 "index": "_" + secrets.token_hex(16)}]}


def fill(services: Any, users: int) -> None:
    from sqlalchemy import insert, select

    from app.core.factors.totp import new_secret
    from app.models import (
        Device,
        PushRequest,
        RememberedBrowser,
        User,
        WebAuthnCredential,
        WebSession,
    )

    keys, now = services.keys, datetime.now(UTC)
    subscription = json.dumps({"endpoint": "https://fcm.googleapis.com/fcm/send/"
                               + secrets.token_urlsafe(120),
                               "keys": {"p256dh": secrets.token_urlsafe(65),
                                        "auth": secrets.token_urlsafe(16)}})
    for start in range(0, users, CHUNK):
        names = [f"s{n:07d}" for n in range(start, min(users, start + CHUNK))]
        with services.db.session() as db:
            db.execute(insert(User), [
                {"username": name, "display_name": f"Chan, Tai Man {name}",
                 "email": f"{name}@um.edu.mo", "given_name": "Tai Man",
                 "surname": f"Chan {name}", "role": "student", "password_hash": ARGON2_AS_STORED,
                 "dob_hash": keys.keyed_hash("dob", name), "id_last4_hash":
                 keys.keyed_hash("id", name), "disabled": False, "failed_factor_count": 0,
                 "created_at": now, "enrolled_at": now} for name in names])
            ids = dict(db.execute(select(User.username, User.id)
                                  .where(User.username.in_(names))).all())
            rows = []
            for i, name in enumerate(names):
                rows.append({"user_id": ids[name], "name": "iPhone", "kind": "totp",
                             "device_type": "mobile", "platform": "ios",
                             "secret_enc": keys.encrypt(new_secret().encode()), "active": True,
                             "is_default": True, "created_at": now, "last_step": 59_000_000,
                             "last_used_at": now, "enrolled_via": "portal"})
                if i % 3 == 0:
                    rows.append({"user_id": ids[name], "name": "UM 2FA app", "kind": "push",
                                 "device_type": "mobile", "platform": "android",
                                 "secret_enc": keys.encrypt(new_secret().encode()),
                                 "active": True, "is_default": False, "created_at": now,
                                 "public_key": secrets.token_bytes(65),
                                 "push_subscription": subscription, "enrolled_via": "portal"})
                if i % 20 == 0:
                    rows.append({"user_id": ids[name], "name": "YubiKey", "kind": "webauthn",
                                 "device_type": "security_key", "platform": "other",
                                 "secret_enc": b"", "active": True, "is_default": False,
                                 "created_at": now, "enrolled_via": "portal"})
            db.execute(insert(Device), rows)
            devices = db.execute(select(Device.id, Device.user_id, Device.kind)
                                 .where(Device.user_id.in_(ids.values()))).all()
            db.execute(insert(WebAuthnCredential), [
                {"device_id": d.id, "credential_id": secrets.token_bytes(64),
                 "public_key": secrets.token_bytes(77), "sign_count": 12,
                 "aaguid": "cb69481e-8ff7-4039-93ec-0a2729a154a8", "created_at": now}
                for d in devices if d.kind == "webauthn"])
            db.execute(insert(WebSession), [
                {"key": secrets.token_bytes(32), "user_id": uid,
                 "data": keys.encrypt(json.dumps(session_data(uid)).encode()),
                 "created_at": now, "expires_at": now + timedelta(hours=8)}
                for uid in ids.values()])
            db.execute(insert(RememberedBrowser), [
                {"user_id": uid, "token_hash": secrets.token_bytes(32),
                 "label": "Chrome on Windows", "address": "10.12.34.56", "created_at": now,
                 "expires_at": now + timedelta(days=30), "last_used_at": now}
                for n, uid in enumerate(ids.values()) if n % 2 == 0])
            first_device = {d.user_id: d.id for d in devices}
            db.execute(insert(PushRequest), [
                {"public_id": secrets.token_urlsafe(16), "user_id": uid,
                 "device_id": first_device[uid], "status": "used", "number": "42",
                 "door": "sso", "service": "myUM", "client_addr": "10.12.34.56",
                 "created_at": now, "expires_at": now + timedelta(minutes=2),
                 "answered_at": now, "answer_signature": secrets.token_bytes(71)}
                for uid in ids.values()])


def pg_sizes(plain: str, schema: str) -> dict[str, dict[str, float]]:
    import psycopg

    out = {}
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        for table in TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")
            rows, total = conn.execute(  # table: one of TABLES, ours
                f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}"  # noqa: S608
            ).fetchone()
            out[table] = {"rows": rows, "total_kb": round(total / 1024),
                          "bytes_per_row": round(total / rows, 1) if rows else 0.0}
    return out


def redis_sizes(url: str, keys: Any) -> dict[str, int]:
    import redis

    from app.core.session_store import RedisSessions

    client = redis.Redis.from_url(url, socket_timeout=5)
    prefix = f"bench-{secrets.token_hex(4)}:"
    now = datetime.now(UTC)
    made: list[str] = []
    try:
        limit_key = f"{prefix.rstrip(':')}:um2fa:limits:sso.sign_in:30/60:{'a1' * 16}"
        client.set(limit_key, 3, ex=60)
        user_limit = f"{prefix.rstrip(':')}:um2fa:limits:sso.sign_in:10/60:{'b2' * 16}"
        client.set(user_limit, 1, ex=60)
        made += [limit_key, user_limit]
        store = RedisSessions(url, prefix)
        session_key = secrets.token_bytes(32)
        blob = keys.encrypt(json.dumps(session_data(1234)).encode())
        store.save(None, session_key, 1234, blob, now, now + timedelta(hours=8), now, new=True)
        made += [f"{prefix}um2fa:session:{session_key.hex()}", f"{prefix}um2fa:session:user:1234"]
        attempts = f"{prefix}um2fa:attempts:{secrets.token_hex(32)}"
        client.hset(attempts, mapping={"n": 3, "t": time.time()})
        client.expire(attempts, 900)
        made.append(attempts)
        usage = {name: int(client.memory_usage(key) or 0) for name, key in zip(
            ("rate-limit counter, per address", "rate-limit counter, per user",
             "browser session (UM2FA_SESSION_STORE=redis)", "a user's set of sessions (1)",
             "RADIUS attempts counter"), made, strict=True)}
        usage["session record, encrypted (bytes)"] = len(blob)
        return usage
    finally:
        if made:
            client.delete(*made)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--database-url", default=os.environ.get("UM2FA_TEST_DATABASE_URL")
                        or DEFAULT_PG)
    parser.add_argument("--redis-url", default=os.environ.get("UM2FA_TEST_REDIS_URL")
                        or DEFAULT_REDIS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not 100 <= args.users <= 200_000:
        parser.error("--users: 100-200,000")
    from app.bootstrap import build_services
    from app.config import load_settings

    schema, url, drop = fresh_schema(args.database_url)
    plain = args.database_url.replace("postgresql+psycopg://", "postgresql://")
    started = time.monotonic()
    try:
        from app import migrate

        migrate.upgrade(url)
        with tempfile.TemporaryDirectory() as instance:
            services = build_services(load_settings({
                "database_url": url, "instance_dir": Path(instance) / "instance",
                "secret_key": secrets.token_urlsafe(32),
                "encryption_key": secrets.token_urlsafe(32)}))
            try:
                fill(services, args.users)
                tables = pg_sizes(plain, schema)
                memory = redis_sizes(args.redis_url, services.keys)
            finally:
                services.db.dispose()
    finally:
        drop()
    result = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "users": args.users,
              "seconds": round(time.monotonic() - started, 1), "postgresql": tables,
              "redis_memory_usage_bytes": memory}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
