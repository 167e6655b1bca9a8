"""`um2fa sp …` and `um2fa saml …`."""

from __future__ import annotations

import pytest

from tests.peers.saml_sp import TestSP


@pytest.fixture
def settings_overrides():
    return {"base_url": "https://2fa.example.edu"}


def test_sp_add_list_remove(runner, tmp_path):
    sp = TestSP(base="https://myum.example.edu", name="myUM", sign_requests=True)
    meta = tmp_path / "sp.xml"
    meta.write_text(sp.metadata())
    result = runner.invoke(args=["sp", "add", "--metadata", str(meta)])
    assert result.exit_code == 0, result.output
    assert "registered https://myum.example.edu/metadata" in result.output
    assert "signs its requests" in result.output
    listing = runner.invoke(args=["sp", "list"]).output
    assert "https://myum.example.edu/metadata\tmyUM\thttps://myum.example.edu/acs" in listing
    again = runner.invoke(args=["sp", "add", "--metadata", str(meta)])
    assert again.exit_code == 1 and "already registered" in again.output
    assert runner.invoke(args=["sp", "add", "--metadata", str(meta), "--replace"]).exit_code == 0
    assert runner.invoke(args=["sp", "remove", "https://myum.example.edu/metadata"]).exit_code \
        == 0
    assert "myum" not in runner.invoke(args=["sp", "list"]).output
    missing = runner.invoke(args=["sp", "remove", "https://nope"])
    assert missing.exit_code == 1 and "no such service provider" in missing.output


@pytest.mark.parametrize("content, message", [
    ("<not xml", "not well-formed"),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "document type"),
    ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
     "no entityID or no SPSSODescriptor"),
    (TestSP(base="https://myum.example.edu").metadata().replace('index="1"', 'index="one"'),
     "index"),
])
def test_sp_add_rejects_bad_metadata(runner, tmp_path, content, message):
    meta = tmp_path / "bad.xml"
    meta.write_text(content)
    result = runner.invoke(args=["sp", "add", "--metadata", str(meta)])
    assert result.exit_code == 1 and message in result.output
    assert "Traceback" not in result.output


def test_saml_metadata_command(runner):
    result = runner.invoke(args=["saml", "metadata"])
    assert result.exit_code == 0
    assert 'entityID="https://2fa.example.edu/saml/metadata"' in result.output
    assert 'Location="https://2fa.example.edu/saml/sso"' in result.output
    assert "<ds:Signature" in result.output
    unsigned = runner.invoke(args=["saml", "metadata", "--unsigned"]).output
    assert "<ds:Signature" not in unsigned


@pytest.mark.parametrize("settings_overrides", [{}])
def test_saml_commands_need_a_base_url(runner):
    result = runner.invoke(args=["saml", "metadata"])
    assert result.exit_code == 1 and "UM2FA_BASE_URL" in result.output


def test_key_files_are_private(app, runner):
    runner.invoke(args=["saml", "metadata"])
    keys = sorted((app.config["UM2FA"].instance_dir / "saml").glob("key-*.pem"))
    assert keys and oct(keys[0].stat().st_mode & 0o777) == "0o600"
