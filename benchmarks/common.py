"""What the benchmarks share: a throwaway PostgreSQL schema and percentiles."""

from __future__ import annotations

import platform
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote


def fresh_schema(url: str) -> tuple[str, str, Callable[[], None]]:
    """(schema, URL whose search_path is that schema, drop): a run's own tables on a shared
    PostgreSQL, as the multi-node tests do."""
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')

    sep = "&" if "?" in url else "?"
    return schema, f"{url}{sep}options={quote(f'-csearch_path={schema}')}", drop


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def clean_up(jobs: list[Callable[[], None]], workdir: Path) -> None:
    """Run every clean-up job, newest first, whatever fails, then remove the run's directory."""
    for job in reversed(jobs):
        try:
            job()
        except Exception as exc:  # noqa: BLE001 - clean up the rest anyway
            print(f"cleanup: {exc}", file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)


def seed_totp_devices(session, keys, ids: dict[str, int], now) -> dict[str, str]:
    """One active TOTP device per user (`ids`: username -> user id), in bulk; their secrets."""
    from sqlalchemy import insert

    from app.core.factors.totp import new_secret
    from app.models import Device

    secrets_by_user: dict[str, str] = {}
    devices = []
    for username, user_id in ids.items():
        secret = new_secret()
        secrets_by_user[username] = secret
        devices.append({"user_id": user_id, "name": "Phone", "kind": "totp",
                        "device_type": "mobile", "platform": "other",
                        "secret_enc": keys.encrypt(secret.encode()), "active": True,
                        "is_default": True, "created_at": now})
    for start in range(0, len(devices), 5000):
        session.execute(insert(Device), devices[start:start + 5000])
    return secrets_by_user
