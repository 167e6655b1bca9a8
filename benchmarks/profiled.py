"""Run um2fa's command line with cProfile on every thread (cProfile alone sees only the main
thread; the RADIUS door decides on worker threads), and write the merged statistics when the
process exits (SIGTERM ends `um2fa radius` cleanly):

    python -m benchmarks.profiled OUT.pstats radius --port 0 ...

benchmarks/radius_ldap.py starts the server this way with --profile; read the file with
`python -m pstats OUT.pstats` (sort tottime, stats 40).
"""

from __future__ import annotations

import atexit
import cProfile
import pstats
import sys
import threading
import time

_profiles: list[cProfile.Profile] = []
_run = threading.Thread.run


def _profiled_run(self: threading.Thread) -> None:
    profile = cProfile.Profile(time.thread_time)
    _profiles.append(profile)
    profile.enable()
    try:
        _run(self)
    finally:
        profile.disable()


def _dump(path: str) -> None:
    stats: pstats.Stats | None = None
    for profile in list(_profiles):
        profile.snapshot_stats()  # a thread still running (the executor's): what it has so far
        if profile.stats:  # type: ignore[attr-defined]
            if stats is None:
                stats = pstats.Stats(profile)
            else:
                stats.add(profile)
    if stats is not None:
        stats.dump_stats(path)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    path = sys.argv[1]
    threading.Thread.run = _profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile(time.thread_time)
    _profiles.append(main_profile)
    atexit.register(_dump, path)
    from app.cli import main as um2fa

    sys.argv = ["um2fa", *sys.argv[2:]]
    main_profile.enable()
    try:
        um2fa()
    finally:
        main_profile.disable()


if __name__ == "__main__":
    main()
