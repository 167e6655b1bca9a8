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
    (instance / "secret_key").write_text("made-by-the-other-process\n")
    exists = Path.exists
    monkeypatch.setattr(Path, "exists",  # as if the other process wrote it just after our look
                        lambda self: False if self.name == "secret_key" else exists(self))
    settings = load_settings(environ={"UM2FA_INSTANCE_DIR": str(instance)})
    assert settings.secret_key == "made-by-the-other-process"
    assert sorted(p.name for p in instance.iterdir()) == ["encryption_key", "secret_key"]


@pytest.mark.parametrize("env, message", [
    ({"UM2FA_CAMPUS_NETWORKS": "10.0.0.0/8,banana"}, "CIDR"),
    ({"UM2FA_LOCKOUT_THRESHOLD": "ten"}, "whole number"),
    ({"UM2FA_LOCKOUT_THRESHOLD": "0"}, "at least 1"),
    ({"UM2FA_CONFIG": "/nonexistent/um2fa.toml"}, "cannot read"),
])
def test_bad_settings_are_clear_errors(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ={"UM2FA_INSTANCE_DIR": str(tmp_path), **env})
