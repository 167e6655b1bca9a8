"""What the benchmarks share: a throwaway PostgreSQL schema and percentiles."""

from __future__ import annotations

import platform
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
