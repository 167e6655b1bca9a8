"""A live `um2fa radius` on the test database, with one RADIUS client per mode, each on its own
loopback address (Linux routes all of 127.0.0.0/8 to lo, so a test picks its NAS by source)."""

from __future__ import annotations

import pytest

from tests.peers.live_radius import LiveRadius, make_env

SECRETS = {
    "local": "local-secret-0123456789",
    "challenge": "challenge-secret-0123456789",
    "second": "second-secret-0123456789",
    "legacy": "legacy-secret-0123456789",
    "lan": "lan-secret-0123456789",
}
# name, source address (the client's network), mode, extra options
CLIENTS = [
    ("local", "127.0.0.1", "127.0.0.1/32", ["--mode", "append"]),
    ("challenge", "127.0.0.2", "127.0.0.2", ["--mode", "challenge"]),
    ("second", "127.0.0.3", "127.0.0.3", ["--mode", "second-factor"]),
    ("legacy", "127.0.0.4", "127.0.0.4", ["--allow-missing-message-authenticator"]),
    ("lan", "127.0.0.5", "127.0.0.0/24", ["--delimiter", "+"]),
]
SOURCE = {name: source for name, source, _net, _opts in CLIENTS}
UNKNOWN_SOURCE = "127.0.1.9"


@pytest.fixture
def radius(app, runner, tmp_path, database_url, settings_overrides):
    for name, _source, network, options in CLIENTS:
        result = runner.invoke(args=["radius-clients", "add", name, "--address", network,
                                     "--secret", SECRETS[name], *options])
        assert result.exit_code == 0, result.output
    env = make_env(tmp_path / "instance", database_url,
                   **{k: str(v) for k, v in settings_overrides.items()})
    server = LiveRadius(instance_dir=tmp_path / "instance", env=env).start()
    yield server
    server.stop()
