"""Keys on several nodes (issue 18, point 5; docs/deploy.md, "3. Shared keys"): with a shared
database no command makes keys by itself, so a node started before it was given the service's
keys refuses, says how to get them and leaves its instance directory as it was; `um2fa keys
generate` makes them once and never overwrites one; a node given a copy serves with them. On
SQLite (one machine) they are still made on first start.

The refusals need no database: they come before any connection (UNREACHABLE is never reached).
The node that starts with copied keys needs UM2FA_TEST_DATABASE_URL.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from app.config import MissingKeys, Settings, load_settings
from app.core import webpush
from saml import keys as saml_keys
from tests.peers.live import ROOT, UM2FA, free_port
from tests.peers.live_radius import make_env
from tests.peers.nodes import (
    copy_keys,
    drop_schema,
    fresh_schema,
    make_keys,
    node_env,
    run_cli,
    start_web,
)

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
UNREACHABLE = "postgresql+psycopg://nobody@127.0.0.1:1/none"
KEY_FILES = ["encryption_key", "saml", "saml/cert-001.pem", "saml/enc-cert-001.pem",
             "saml/enc-key-001.pem", "saml/key-001.pem", "secret_key", "vapid_private.pem"]


def um2fa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([UM2FA, *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def gunicorn(env: dict[str, str]) -> subprocess.CompletedProcess:
    """gunicorn as deploy/um2fa-web.service starts it; it must stop by itself, here."""
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
        env={**env, "UM2FA_BIND": f"127.0.0.1:{free_port()}", "UM2FA_WORKERS": "1"},
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=ROOT)


def files(instance: Path) -> list[str]:
    return sorted(str(p.relative_to(instance)) for p in instance.rglob("*"))


def refused(result: subprocess.CompletedProcess, *missing: str) -> bool:
    """Refused with one clear message naming each missing key and the way to get them."""
    return (result.returncode != 0 and "Traceback" not in result.stderr
            and all(f"no {name}" in result.stderr for name in missing)
            and "um2fa keys generate" in result.stderr and "docs/deploy.md" in result.stderr)


def test_without_keys_no_command_starts_on_a_shared_database_and_none_makes_keys(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    env = make_env(instance, UNREACHABLE)
    for args in (["db", "upgrade"], ["radius", "--port", "0"]):  # `serve`: as `db upgrade`
        result = um2fa(env, *args)
        assert refused(result, "secret_key", "encryption_key"), (args, result.stderr)
    assert refused(gunicorn(env), "secret_key", "encryption_key")
    assert files(instance) == []
    # SQLite, one machine: made on first start as before
    sqlite = make_env(instance, f"sqlite:///{tmp_path / 'one.sqlite3'}")
    assert um2fa(sqlite, "db", "upgrade").returncode == 0
    assert files(instance) == ["encryption_key", "secret_key"]


def test_nothing_in_a_process_makes_a_key_on_a_shared_database(tmp_path):
    """The keys made on first use (SAML, VAPID) are not made there either."""
    instance = tmp_path / "instance"
    with pytest.raises(MissingKeys, match="no secret_key .* no encryption_key .*keys generate"):
        load_settings(environ={"UM2FA_INSTANCE_DIR": str(instance),
                               "UM2FA_DATABASE_URL": UNREACHABLE})
    settings = Settings(instance_dir=instance, database_url=UNREACHABLE)
    with pytest.raises(MissingKeys, match="no VAPID key"):
        webpush.private_key(settings)
    with pytest.raises(MissingKeys, match="no SAML encryption key"):
        saml_keys.load_all(instance, "idp", saml_keys.ENCRYPTION, make=settings.makes_keys)
    assert not instance.exists()


def test_keys_generate_makes_every_key_once_and_prints_the_environment_form(tmp_path):
    instance = tmp_path / "instance"
    env = make_env(instance, UNREACHABLE)  # nothing is connected to
    made = um2fa(env, "keys", "generate")
    assert made.returncode == 0, made.stderr
    assert files(instance) == KEY_FILES
    assert {str(p.relative_to(instance)): oct(p.stat().st_mode & 0o777)
            for p in [instance, instance / "saml"]} == {".": "0o700", "saml": "0o700"}
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in instance.rglob("*")
               if p.is_file())
    # the formats docs/deploy.md describes
    printed = dict(line.split("=", 1) for line in made.stdout.splitlines())
    assert printed == {"UM2FA_SECRET_KEY": (instance / "secret_key").read_text().strip(),
                       "UM2FA_ENCRYPTION_KEY": (instance / "encryption_key").read_text().strip()}
    assert all(len(value) == 43 for value in printed.values())
    for name in ("key-001.pem", "enc-key-001.pem"):
        key = load_pem_private_key((instance / "saml" / name).read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
        assert (instance / "saml" / name).read_text().startswith("-----BEGIN PRIVATE KEY-----")
    cert = x509.load_pem_x509_certificate((instance / "saml" / "cert-001.pem").read_bytes())
    assert cert.public_key().public_numbers() == load_pem_private_key(
        (instance / "saml" / "key-001.pem").read_bytes(), None).public_key().public_numbers()
    vapid = load_pem_private_key((instance / "vapid_private.pem").read_bytes(), None)
    assert isinstance(vapid, ec.EllipticCurvePrivateKey) and vapid.curve.name == "secp256r1"

    before = {name: (instance / name).read_bytes() for name in KEY_FILES if name != "saml"}
    again = um2fa(env, "keys", "generate")
    assert again.returncode == 1 and "never overwritten" in again.stderr and again.stdout == ""
    (instance / "vapid_private.pem").unlink()  # one missing: made alone, the others kept
    partial = um2fa(env, "keys", "generate")
    assert partial.returncode == 0 and "made in" in partial.stderr
    assert "VAPID key" in partial.stderr and "kept as they were" in partial.stderr
    after = {name: (instance / name).read_bytes() for name in before}
    assert {n for n in before if before[n] != after[n]} == {"vapid_private.pem"}

    # secret and encryption keys given in the environment are there: no file made for them
    other = tmp_path / "other"
    copy_keys(instance, other)
    for name in ("secret_key", "encryption_key"):
        (other / name).unlink()
    given = make_env(other, UNREACHABLE, secret_key=printed["UM2FA_SECRET_KEY"],
                     encryption_key=printed["UM2FA_ENCRYPTION_KEY"])
    result = um2fa(given, "keys", "generate")
    assert result.returncode == 1 and "every key exists already" in result.stderr
    assert "secret_key" not in files(other)


@pytest.mark.skipif(not PG_URL, reason="a node that starts needs UM2FA_TEST_DATABASE_URL")
def test_a_second_node_serves_only_with_a_copy_of_the_first_nodes_keys(tmp_path):
    schema, url = fresh_schema(PG_URL)
    first = make_env(tmp_path / "first" / "instance", url)
    second_dir = tmp_path / "second" / "instance"
    second = node_env(first, second_dir)
    try:
        make_keys(first)
        run_cli(first, "db", "upgrade")
        # the second machine was given the two keys of UM2FA_* only: it will not serve
        second_dir.mkdir(parents=True)
        for name in ("secret_key", "encryption_key"):
            shutil.copy2(tmp_path / "first" / "instance" / name, second_dir / name)
        saml_and_vapid = ("SAML signing key", "SAML encryption key", "VAPID key")
        assert refused(um2fa(second, "serve", "--port", str(free_port())), *saml_and_vapid)
        assert refused(gunicorn(second), *saml_and_vapid)
        radius = um2fa(second, "radius", "--port", "0")  # a VPN push wakes the phone from it
        assert refused(radius, "VAPID key") and "SAML" not in radius.stderr
        assert files(second_dir) == ["encryption_key", "secret_key"]

        copy_keys(tmp_path / "first" / "instance", second_dir)
        assert files(second_dir) == KEY_FILES
        server, node_url = start_web(second, "second", tmp_path)
        try:
            metadata = requests.get(node_url + "/saml/metadata", timeout=10).text
        finally:
            server.stop()
        for name in ("cert-001.pem", "enc-cert-001.pem"):  # the first node's, not new ones
            pem = (tmp_path / "first" / "instance" / "saml" / name).read_text()
            assert "".join(pem.strip().splitlines()[1:-1]) in metadata
        assert files(second_dir) == KEY_FILES
    finally:
        drop_schema(PG_URL, schema)
