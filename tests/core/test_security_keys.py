"""Security keys and passkeys (app/core/security_keys.py): the refusals that need no browser.

The ceremonies themselves run in Chromium (tests/browser/test_security_key_browser.py). Here the
signature checks of py_webauthn are replaced, where a test needs a verified answer, by the
library's own result types, so that our rules around them are what is tested: the challenge
(single use, short lived, for this user and ceremony), unknown credential ids, credential ids
unique, the AAGUID allow-list, the counter (a clone), lockout and audit.
"""

from __future__ import annotations

import json

import pytest
import webauthn
from webauthn.authentication.verify_authentication_response import VerifiedAuthentication
from webauthn.helpers import bytes_to_base64url, structs
from webauthn.registration.verify_registration_response import VerifiedRegistration

from app.core import devices, security_keys, support, users
from app.core.radius_auth import challenge
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    csrf_token,
    make_user,
    sign_in,
)

RP = security_keys.RelyingParty(id="localhost", origin="http://localhost:5000", name="UM 2FA")
AAGUID = "cb69481e-8ff7-4039-93ec-0a2729a154a8"
CREDENTIAL_ID = b"\x01" * 32


def _verified_registration(credential_id: bytes = CREDENTIAL_ID,
                           aaguid: str = AAGUID) -> VerifiedRegistration:
    return VerifiedRegistration(
        credential_id=credential_id, credential_public_key=b"cose-key", sign_count=0,
        aaguid=aaguid, fmt=structs.AttestationFormat.NONE,
        credential_type=structs.PublicKeyCredentialType.PUBLIC_KEY, user_verified=False,
        attestation_object=b"", credential_device_type=structs.CredentialDeviceType.SINGLE_DEVICE,
        credential_backed_up=False)


def _accept_registration(monkeypatch, verified: VerifiedRegistration) -> None:
    monkeypatch.setattr(webauthn, "verify_registration_response", lambda **kw: verified)


def _accept_assertion(monkeypatch, new_sign_count: int) -> None:
    monkeypatch.setattr(webauthn, "verify_authentication_response", lambda **kw:
                        VerifiedAuthentication(
                            credential_id=CREDENTIAL_ID, new_sign_count=new_sign_count,
                            credential_device_type=structs.CredentialDeviceType.SINGLE_DEVICE,
                            credential_backed_up=False, user_verified=False))


def _register(app, monkeypatch, **kw) -> int:
    _accept_registration(monkeypatch, _verified_registration(**kw))
    with committed(app) as c:
        user = users.get(c, "alice")
        _, record = security_keys.registration_options(c, user, RP)
        return security_keys.register(c, TEST_ORIGIN, user, RP, {"id": "x"}, record).id


def _assertion(credential_id: bytes = CREDENTIAL_ID) -> dict:
    return {"id": bytes_to_base64url(credential_id), "rawId": bytes_to_base64url(credential_id),
            "type": "public-key", "response": {}}


def _authenticate(app, credential: dict, *, record: dict | None = None, expire: bool = False):
    with committed(app) as c:
        user = users.get(c, "alice")
        _, fresh = security_keys.authentication_options(c, user, RP)
        if expire:
            fresh["expires"] = c.clock() - 1
        outcome = security_keys.authenticate(c, TEST_ORIGIN, user, RP, credential,
                                             fresh if record is None else record)
        return outcome.status, outcome.locked, users.get(c, "alice").failed_factor_count


@pytest.fixture
def alice(app):
    return make_user(app)


def test_a_registered_key_is_an_active_device_no_vpn_door_counts(app, alice,
                                                                    monkeypatch) -> None:
    device_id = _register(app, monkeypatch)
    with committed(app) as c:
        user = users.get(c, "alice")
        [device] = devices.active_devices(user)
        assert device.id == device_id and device.kind == "webauthn" and device.is_default
        assert devices.DEVICE_TYPES[device.device_type] == "Security key or passkey"
        assert devices.vpn_devices(user) == []
        # the VPN's challenge says so, rather than listing the key as a way to answer
        assert "security key or passkey cannot be used here" in challenge._prompt(user)
        # the help desk's page about the person lists it, by its type
        [seen] = support.user_view(c, "alice").devices
        assert (seen.id, seen.device_type) == (device_id, "security_key")
    assert [r.result for r in audit_rows(app, "device.activate")] == ["ok"]


def test_a_credential_id_already_registered_is_refused(app, alice, monkeypatch) -> None:
    _register(app, monkeypatch)
    make_user(app, "bob")
    with committed(app) as c:
        bob = users.get(c, "bob")
        _, record = security_keys.registration_options(c, bob, RP)
        with pytest.raises(security_keys.RegistrationError, match="already registered"):
            security_keys.register(c, TEST_ORIGIN, bob, RP, {"id": "x"}, record)
        assert devices.active_devices(bob) == []
    assert audit_rows(app, "device.activate")[-1].detail.startswith(
        "webauthn:credential id already registered")


@pytest.mark.parametrize("settings_overrides", [{"webauthn_aaguids": (AAGUID.upper(),)}])
def test_the_aaguid_allow_list_takes_only_listed_keys_with_direct_attestation(
        app, alice, monkeypatch, settings_overrides) -> None:
    with committed(app) as c:
        options, _ = security_keys.registration_options(c, users.get(c, "alice"), RP)
        assert json.loads(options)["attestation"] == "direct"
        assert security_keys.aaguid_allowed(c, AAGUID)
        assert not security_keys.aaguid_allowed(c, "00000000-0000-0000-0000-000000000000")
    with pytest.raises(security_keys.RegistrationError, match="not allowed"):
        _register(app, monkeypatch, aaguid="00000000-0000-0000-0000-000000000000")
    assert _register(app, monkeypatch)  # a listed key is added


def test_without_an_allow_list_attestation_is_none_and_any_key_is_taken(app, alice) -> None:
    with committed(app) as c:
        options, record = security_keys.registration_options(c, users.get(c, "alice"), RP)
        parsed = json.loads(options)
        assert parsed["attestation"] == "none" and parsed["rp"]["id"] == "localhost"
        assert parsed["authenticatorSelection"]["userVerification"] == "preferred"
        assert parsed["user"]["name"] == "alice" and "alice" not in parsed["user"]["id"]
        assert security_keys.aaguid_allowed(c, "anything")
        assert record["challenge"] not in json.dumps(record.get("user"))


def test_an_expired_or_foreign_registration_challenge_is_refused(app, alice,
                                                                 monkeypatch) -> None:
    _accept_registration(monkeypatch, _verified_registration())
    make_user(app, "bob")
    with committed(app) as c:
        alice_row, bob = users.get(c, "alice"), users.get(c, "bob")
        _, record = security_keys.registration_options(c, alice_row, RP)
        for bad in (None, {**record, "expires": c.clock() - 1}, {**record, "purpose": "sign-in"}):
            with pytest.raises(security_keys.RegistrationError, match="expired"):
                security_keys.register(c, TEST_ORIGIN, alice_row, RP, {"id": "x"}, bad)
        with pytest.raises(security_keys.RegistrationError, match="expired"):
            security_keys.register(c, TEST_ORIGIN, bob, RP, {"id": "x"}, record)  # alice's


def test_an_unknown_credential_id_is_refused_counted_and_audited(app, alice,
                                                                 monkeypatch) -> None:
    _register(app, monkeypatch)
    _accept_assertion(monkeypatch, 1)
    assert _authenticate(app, _assertion(b"\x02" * 32)) == ("wrong", False, 1)
    row = audit_rows(app, "factor")[-1]
    assert (row.result, row.detail) == ("fail", "webauthn:unknown credential")


def test_another_users_key_does_not_sign_alice_in(app, alice, monkeypatch) -> None:
    make_user(app, "bob")
    _accept_registration(monkeypatch, _verified_registration())
    with committed(app) as c:
        bob = users.get(c, "bob")
        _, record = security_keys.registration_options(c, bob, RP)
        security_keys.register(c, TEST_ORIGIN, bob, RP, {"id": "x"}, record)
    _accept_assertion(monkeypatch, 1)
    assert _authenticate(app, _assertion())[0] == "wrong"


def test_an_expired_or_used_challenge_is_refused_and_not_counted(app, alice,
                                                                 monkeypatch) -> None:
    _register(app, monkeypatch)
    _accept_assertion(monkeypatch, 1)
    assert _authenticate(app, _assertion(), expire=True) == ("expired", False, 0)
    assert _authenticate(app, _assertion(), record={}) == ("expired", False, 0)  # taken already
    assert audit_rows(app, "factor")[-1].detail == "webauthn:expired"


def test_the_counter_must_go_up_else_a_possible_clone_is_refused(app, alice,
                                                                 monkeypatch) -> None:
    _register(app, monkeypatch)
    _accept_assertion(monkeypatch, 5)
    assert _authenticate(app, _assertion()) == ("ok", False, 0)
    for went_back in (5, 3, 0):
        _accept_assertion(monkeypatch, went_back)
        assert _authenticate(app, _assertion())[0] == "cloned"
    row = audit_rows(app, "factor")[-1]
    assert row.result == "cloned" and "possible cloned key" in row.detail
    _accept_assertion(monkeypatch, 6)
    assert _authenticate(app, _assertion()) == ("ok", False, 0)  # the key itself goes on


def test_a_key_without_a_counter_always_sends_zero(app, alice, monkeypatch) -> None:
    _register(app, monkeypatch)
    _accept_assertion(monkeypatch, 0)
    assert _authenticate(app, _assertion())[0] == "ok"
    assert _authenticate(app, _assertion())[0] == "ok"


@pytest.mark.parametrize("settings_overrides", [{"lockout_threshold": 2}])
def test_failures_lock_the_account_as_wrong_passcodes_do(app, alice, monkeypatch,
                                                         settings_overrides) -> None:
    _register(app, monkeypatch)
    _accept_assertion(monkeypatch, 1)
    unknown = _assertion(b"\x02" * 32)
    assert _authenticate(app, unknown)[:2] == ("wrong", False)
    assert _authenticate(app, unknown)[:2] == ("wrong", True)
    assert _authenticate(app, _assertion())[:2] == ("wrong", True)  # locked: not even tried
    assert audit_rows(app, "factor")[-1].result == "locked"


def test_the_portal_takes_a_challenge_once(app, alice, client, monkeypatch) -> None:
    """The door keeps the challenge in the session and takes it out for the first answer."""
    _register(app, monkeypatch)
    add_totp_device(app)
    sign_in(client)
    headers = {"X-CSRFToken": csrf_token(client, "/prompt")}
    options = client.post("/prompt/security-key/options", json={}, headers=headers)
    assert options.status_code == 200 and options.json["rpId"] == "localhost"
    first = client.post("/prompt/security-key", json={"credential": _assertion(b"\x03" * 32)},
                        headers=headers)
    assert first.status_code == 401 and "not accepted" in first.json["error"]
    _accept_assertion(monkeypatch, 1)
    again = client.post("/prompt/security-key", json={"credential": _assertion()},
                        headers=headers)
    assert again.status_code == 401 and "expired or was already used" in again.json["error"]
    assert client.post("/prompt/security-key/options", json={}).status_code == 400  # no CSRF


def test_the_allow_list_setting_is_read_and_checked(tmp_path) -> None:
    from app.config import ConfigError, load_settings

    env = {"UM2FA_INSTANCE_DIR": str(tmp_path)}
    settings = load_settings(environ={**env, "UM2FA_WEBAUTHN_AAGUIDS": f"{AAGUID}, {AAGUID}"})
    assert settings.webauthn_aaguids == (AAGUID, AAGUID)
    with pytest.raises(ConfigError, match="UM2FA_WEBAUTHN_AAGUIDS must be a comma list"):
        load_settings(environ={**env, "UM2FA_WEBAUTHN_AAGUIDS": "yubikey-5"})


def test_a_removed_key_takes_its_credential_with_it_and_can_be_added_again(app, alice,
                                                                          monkeypatch) -> None:
    from sqlalchemy import func, select

    from app.models import WebAuthnCredential

    device_id = _register(app, monkeypatch)
    with committed(app) as c:
        devices.remove(c, TEST_ORIGIN, users.get(c, "alice"), device_id, last_confirmed=True)
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(WebAuthnCredential)) == 0
    _register(app, monkeypatch)  # the same credential id, registered again
    with committed(app) as c:
        assert [d.kind for d in devices.active_devices(users.get(c, "alice"))] == ["webauthn"]


def test_the_vpn_never_offers_a_security_key(app, alice, monkeypatch) -> None:
    """At the VPN door (RADIUS) a security key is no way to answer: the challenge names only
    the devices that can, and a user with a key and a phone is asked for the phone's passcode."""
    from app.core.radius_auth import Outcome
    from tests.conftest import PASSWORD
    from tests.helpers.radius import client, decide

    _register(app, monkeypatch)
    only_key = decide(app, PASSWORD, cfg=client("challenge"))
    assert only_key.outcome is Outcome.CHALLENGE
    assert "security key or passkey cannot be used here" in only_key.message
    assert decide(app, PASSWORD).outcome is Outcome.REJECT  # append mode: nothing to push to
    add_totp_device(app, name="Phone")
    with_phone = decide(app, PASSWORD, cfg=client("challenge"))
    assert with_phone.message == "Enter a 6-digit passcode from Phone."
