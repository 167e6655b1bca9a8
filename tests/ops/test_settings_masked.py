"""The effective settings as the console shows them: secrets masked (app/config/masked.py)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from app.config.masked import MASK, NOT_SET, effective, is_secret, shown
from app.config.settings import Settings


@pytest.mark.parametrize("name", [
    "secret_key", "encryption_key", "smtp_password", "ldap_bind_password", "metrics_token",
    "vapid_private_key", "upstream_radius_secret", "SOME_API_TOKEN"])
def test_secrets_are_known_by_name(name):
    assert is_secret(name) and shown(name, "value") == MASK and shown(name, "") == NOT_SET


@pytest.mark.parametrize("url, masked", [
    ("postgresql://um2fa:p@ss:w0rd@db.example.edu:5432/um2fa",
     f"postgresql://um2fa:{MASK}@db.example.edu:5432/um2fa"),
    ("redis://:hunter2@127.0.0.1:6379/0", f"redis://:{MASK}@127.0.0.1:6379/0"),
    ("postgresql://um2fa@db/um2fa", "postgresql://um2fa@db/um2fa"),
    ("sqlite:////var/lib/um2fa/um2fa.db", "sqlite:////var/lib/um2fa/um2fa.db"),
])
def test_passwords_in_urls_are_masked(url, masked):
    assert shown("database_url", url) == masked


def test_every_field_is_listed_and_nested_secrets_are_masked():
    settings = Settings(secret_key="k" * 40, extra={"webhook_token": "abc", "colour": "blue"},
                        ldap_attributes={"username": "uid", "dob": ""})
    rows = dict(effective(settings))
    assert list(rows) == [f.name for f in fields(Settings)]
    assert rows["secret_key"] == MASK and "k" * 40 not in str(rows)
    assert rows["extra"] == f"webhook_token={MASK}; colour=blue"
    assert rows["ldap_attributes"] == f"username=uid; dob={NOT_SET}"
    assert rows["lockout_threshold"] == "10"
