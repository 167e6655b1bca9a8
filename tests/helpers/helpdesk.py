"""Putting a person into the states the help desk deals with."""

from __future__ import annotations

from app.core import passcodes, users
from tests.conftest import TEST_ORIGIN, committed


def lock_out(app, username: str = "alice") -> None:
    """Wrong passcodes until the person is locked out."""
    with committed(app) as c:
        for _ in range(c.settings.lockout_threshold):
            passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, username), "000000")
