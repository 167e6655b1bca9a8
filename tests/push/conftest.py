"""Fixtures of the push tests."""

from __future__ import annotations

import pytest

from app.core import users
from tests.conftest import make_user


@pytest.fixture
def alice(app, ctx):
    make_user(app)
    return users.get(ctx, "alice")
