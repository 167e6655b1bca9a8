"""Settings: environment and TOML, the instance keys, and clear errors for bad values."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from app.web.addresses import is_campus


def test_settings_from_environment_and_toml(tmp_path):
    toml = tmp_path / "um2fa.toml"
    toml.write_text('lockout_threshold = 4\ncampus_networks = ["10.9.0.0/16"]\nissuer = "X"\n')
    settings = load_settings(environ={"UM2FA_CONFIG": str(toml),
                                      "UM2FA_INSTANCE_DIR": str(tmp_path / "inst"),
                                      "UM2FA_ISSUER": "UM 2FA test"})
    assert settings.lockout_threshold == 4
    assert settings.issuer == "UM 2FA test"  # the environment wins over the file
    assert is_campus("10.9.1.1", settings.campus_networks)
    assert settings.database_url.startswith("sqlite:///") and "inst" in settings.database_url


def test_keys_are_generated_once_and_kept(tmp_path):
    env = {"UM2FA_INSTANCE_DIR": str(tmp_path)}
    first, second = load_settings(environ=env), load_settings(environ=env)
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 40
    assert first.encryption_key == second.encryption_key != first.secret_key
    assert oct((tmp_path / "encryption_key").stat().st_mode & 0o777) == "0o600"


def test_a_key_made_meanwhile_by_another_process_is_the_one_used(tmp_path, monkeypatch):
    """Web and RADIUS units starting together on a fresh instance directory: the process that
    loses the race to make a key uses the winner's (it used to die with FileExistsError)."""
    from pathlib import Path

    instance = tmp_path / "inst"
    instance.mkdir()
    (instance / "secret_key").write_text("made-by-the-other-process-0123456789\n")
    exists = Path.exists
    monkeypatch.setattr(Path, "exists",  # as if the other process wrote it just after our look
                        lambda self: False if self.name == "secret_key" else exists(self))
    settings = load_settings(environ={"UM2FA_INSTANCE_DIR": str(instance)})
    assert settings.secret_key == "made-by-the-other-process-0123456789"
    assert sorted(p.name for p in instance.iterdir()) == ["encryption_key", "secret_key",
                                                          "um2fa.sqlite3"]  # no scratch file


@pytest.mark.parametrize("env, message", [
    ({"UM2FA_CAMPUS_NETWORKS": "10.0.0.0/8,banana"}, "CIDR"),
    ({"UM2FA_LOCKOUT_THRESHOLD": "ten"}, "whole number"),
    ({"UM2FA_LOCKOUT_THRESHOLD": "0"}, "at least 1"),
    ({"UM2FA_LOCKOUT_SECONDS": "0"}, "UM2FA_LOCKOUT_SECONDS must be at least 1"),
    ({"UM2FA_LOCKOUT_BACKOFF_FACTOR": "0"}, "1: no backoff"),
    ({"UM2FA_LOCKOUT_SECONDS": "600", "UM2FA_LOCKOUT_MAX_SECONDS": "300"},
     "UM2FA_LOCKOUT_MAX_SECONDS must be at least UM2FA_LOCKOUT_SECONDS"),
    ({"UM2FA_RECOVERY_MAX_FAILURES_PER_ID": "0"}, "at least 1"),
    ({"UM2FA_RADIUS_GUESS_USER_LIMIT": "0"}, "RADIUS_GUESS_USER_LIMIT must be between 1"),
    ({"UM2FA_RADIUS_GUESS_MAX_DELAY_SECONDS": "60"}, "between 0 and 10"),
    ({"UM2FA_RADIUS_PUSH_FATIGUE_WINDOW_SECONDS": "5"}, "between 60 and 86400"),
    ({"UM2FA_CONFIG": "/nonexistent/um2fa.toml"}, "cannot read"),
    ({"UM2FA_PUSH_EVENTS_URL": "push/events"}, "UM2FA_PUSH_EVENTS_URL must be off, a path"),
    ({"UM2FA_PUSH_EVENTS_URL": "//evil.example/x"}, "UM2FA_PUSH_EVENTS_URL"),
    ({"UM2FA_PUSH_EVENTS_URL": "javascript:alert(1)"}, "UM2FA_PUSH_EVENTS_URL"),
    ({"UM2FA_PUSH_EVENTS_URL": "/push/events?x=1"}, "without a query"),
    ({"UM2FA_PUSH_EVENTS_MAX_STREAMS": "0"}, "UM2FA_PUSH_EVENTS_MAX_STREAMS must be between"),
    ({"UM2FA_WEBPUSH_ALLOWED_HOSTS": "fcm.googleapis.com,*"}, "WEBPUSH_ALLOWED_HOSTS"),
    ({"UM2FA_WEBPUSH_ALLOWED_HOSTS": "*.com"}, "WEBPUSH_ALLOWED_HOSTS"),
    ({"UM2FA_WEBPUSH_ALLOWED_HOSTS": "https://fcm.googleapis.com/"}, "WEBPUSH_ALLOWED_HOSTS"),
    ({"UM2FA_WEBPUSH_TEST_SERVICE": "10.0.0.1:8080"}, "loopback address and port"),
    ({"UM2FA_WEBPUSH_TEST_SERVICE": "localhost:8080"}, "loopback address and port"),
    ({"UM2FA_WEBPUSH_TEST_SERVICE": "127.0.0.1"}, "loopback address and port"),
    ({"UM2FA_TIMEZONE": "Macau"}, "UM2FA_TIMEZONE must be an IANA time zone"),
    ({"UM2FA_TIMEZONE": "../../etc/passwd"}, "UM2FA_TIMEZONE must be an IANA time zone"),
    ({"UM2FA_NOTICE_LINK_DAYS": "0"}, "UM2FA_NOTICE_LINK_DAYS must be between 1 and 90"),
    ({"UM2FA_RECOVERY_DEVICE_HOLD_HOURS": "-1"}, "UM2FA_RECOVERY_DEVICE_HOLD_HOURS"),
    ({"UM2FA_SAML_SCOPE": ""}, "UM2FA_SAML_SCOPE must be the university's domain"),
    ({"UM2FA_SAML_SCOPE": " "}, "UM2FA_SAML_SCOPE must be the university's domain"),
    ({"UM2FA_SAML_SCOPE": "um edu mo"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "@um.edu.mo"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "alice@um.edu.mo"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "um"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "um..edu.mo"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "-um.edu.mo"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_SAML_SCOPE": "um.edu.mo/"}, "UM2FA_SAML_SCOPE"),
    ({"UM2FA_RATELIMIT_SIGNIN_ADDRESS": "thirty a minute"},
     "UM2FA_RATELIMIT_SIGNIN_ADDRESS must be one limit such as '10 per minute'"),
    ({"UM2FA_RATELIMIT_PASSCODE_USER": "10 per minute; 50 per hour"},
     "UM2FA_RATELIMIT_PASSCODE_USER must be one limit"),
    ({"UM2FA_RATELIMIT_ACTIVATE_ADDRESS": ""}, "UM2FA_RATELIMIT_ACTIVATE_ADDRESS must be one"),
])
def test_bad_settings_are_clear_errors(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path), **env})


def test_web_push_goes_to_the_public_push_services_by_default(tmp_path):
    settings = load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path)})
    assert settings.webpush_allowed_hosts == ("fcm.googleapis.com",
                                              "*.push.services.mozilla.com",
                                              "*.push.apple.com", "*.notify.windows.com")
    assert settings.webpush_test_service == ""  # nothing lets Web Push reach loopback
    narrower = load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path),
                                      "UM2FA_WEBPUSH_ALLOWED_HOSTS": "FCM.googleapis.com, "})
    assert narrower.webpush_allowed_hosts == ("fcm.googleapis.com",)


@pytest.mark.parametrize("scope", ["um.edu.mo", "UM.edu.mo", "fst.um.edu.mo", "x-1.example.org"])
def test_a_domain_is_a_good_saml_scope(tmp_path, scope):
    settings = load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path),
                                      "UM2FA_SAML_SCOPE": scope})
    assert settings.saml_scope == scope


STRONG = "kP3v9QxL2mN8rT5wY7zA1bC4dE6fG0hJ-s_u"  # 36 characters, many distinct


@pytest.mark.parametrize("name", ["UM2FA_SECRET_KEY", "UM2FA_ENCRYPTION_KEY"])
@pytest.mark.parametrize("weak", ["short", "a" * 64, "ab" * 20, "0123456789" * 3])
def test_weak_keys_are_refused_with_how_to_make_one(tmp_path, name, weak):
    """Security issue point 13: a guessable key forges sessions or decrypts device secrets."""
    with pytest.raises(ConfigError) as raised:
        load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path), name: weak})
    message = str(raised.value)
    assert name in message and "um2fa keys generate" in message
    assert weak not in message  # a secret never reaches an error message


def test_strong_keys_are_accepted(tmp_path):
    import secrets

    settings = load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path),
                                      "UM2FA_SECRET_KEY": STRONG,
                                      "UM2FA_ENCRYPTION_KEY": secrets.token_hex(32)})
    assert settings.secret_key == STRONG


def test_keys_generate_print_only_prints_one_key_and_writes_nothing(tmp_path):
    import subprocess
    import sys

    from app.config import PROJECT_ROOT

    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT),
           "UM2FA_INSTANCE_DIR": str(tmp_path / "nowhere"),
           "UM2FA_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none"}
    result = subprocess.run([sys.executable, "-c", "from app.cli import main; main()",
                             "keys", "generate", "--print-only"], env=env, capture_output=True,
                            text=True, timeout=60, cwd=PROJECT_ROOT)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert len(key) >= 43
    load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path), "UM2FA_SECRET_KEY": key,
                           "UM2FA_ENCRYPTION_KEY": key})
    assert not (tmp_path / "nowhere").exists()


def _modes(root):
    return {str(p.relative_to(root)): oct(p.stat().st_mode & 0o777)
            for p in [root, *sorted(root.rglob("*"))]}


def test_the_instance_directory_and_its_files_are_private_whatever_the_umask(tmp_path):
    """Security issue point 14: keys, the SQLite database, the SAML and VAPID keys are readable
    by their owner only, made so by the app itself (not only by the systemd units' UMask)."""
    import os

    from app import create_app, migrate
    from app.core import webpush
    from app.web.sso_base import signing_keys

    instance = tmp_path / "inst"
    old = os.umask(0o022)
    try:
        app = create_app({"instance_dir": instance, "base_url": "https://2fa.example.edu"})
        migrate.upgrade(app.config["UM2FA"].database_url)
        with app.app_context():
            signing_keys()
        webpush.private_key(app.config["UM2FA"])
    finally:
        os.umask(old)
    modes = _modes(instance)
    assert {"secret_key", "encryption_key", "um2fa.sqlite3", "saml"} <= set(modes)
    assert any(name.startswith("saml/cert-") for name in modes)
    assert {name: mode for name, mode in modes.items()
            if mode != ("0o700" if (instance / name).is_dir() else "0o600")} == {}


def test_a_loose_instance_directory_is_tightened_at_start(tmp_path):
    import os

    instance = tmp_path / "inst"
    (instance / "saml").mkdir(parents=True)
    os.chmod(instance, 0o755)  # noqa: S103 - as an older version or a hand left it
    os.chmod(instance / "saml", 0o755)  # noqa: S103
    load_settings(environ={"UM2FA_INSTANCE_DIR": str(instance)})
    assert oct(instance.stat().st_mode & 0o777) == "0o700"
    assert oct((instance / "saml").stat().st_mode & 0o777) == "0o700"
