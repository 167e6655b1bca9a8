"""No account enumeration by timing: an unknown UMPASS ID and a wrong date of birth take about
the same time at the identity step and at the password step (where argon2 runs for both).

This is a security property, not a performance figure. To stay reliable on a loaded 2-core
machine it interleaves the two cases (ABBA order, so drift hits both alike), discards a warm-up
round, compares medians, and allows a generous margin: half the slower median plus 5 ms. Were
the unknown ID to skip the argon2 verification (tens of milliseconds) or the identity work, the
medians would differ many times over.
"""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import PASSWORD, make_user
from tests.helpers import recovery_steps as steps

P = steps.PREFIX
SAMPLES = 11
CASES = {"unknown user": {"username": "nobody"}, "wrong date of birth": {"dob": "1999-09-09"}}


def timed_walk(app, answers: dict) -> tuple[float, float]:
    client = app.test_client()
    token = steps.token(client)
    data = {"csrf_token": token, **{k: v for k, v in {**steps.ALICE, **answers}.items()
                                    if k != "role"}}
    start = time.perf_counter()
    identified = client.post(f"{P}/identify/student", data=data)
    identify_time = time.perf_counter() - start
    assert identified.status_code == 303
    assert steps.choose(client).status_code == 303
    start = time.perf_counter()
    verdict = client.post(f"{P}/password", data={"csrf_token": token, "password": PASSWORD})
    password_time = time.perf_counter() - start
    assert verdict.status_code == 401
    return identify_time, password_time


@pytest.mark.real_argon2  # the password step's time is argon2's: at its real cost
@pytest.mark.parametrize("settings_overrides", [{"recovery_max_failures": 10_000}])
def test_unknown_user_and_wrong_date_of_birth_take_about_the_same_time(app):
    make_user(app)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in CASES}
    for name in CASES:  # warm-up, not counted
        timed_walk(app, CASES[name])
    names = list(CASES)
    for i in range(SAMPLES):
        for name in (names if i % 2 == 0 else names[::-1]):
            samples[name].append(timed_walk(app, CASES[name]))
    for index, step in enumerate(("identity step", "password step")):
        unknown = statistics.median(s[index] for s in samples["unknown user"])
        wrong = statistics.median(s[index] for s in samples["wrong date of birth"])
        slack = 0.5 * max(unknown, wrong) + 0.005
        assert abs(unknown - wrong) <= slack, (
            f"{step}: median {unknown * 1000:.1f} ms for an unknown user, "
            f"{wrong * 1000:.1f} ms for a wrong date of birth")
