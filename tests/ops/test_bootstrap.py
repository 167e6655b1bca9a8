"""app/bootstrap.py: the services every door builds from the settings."""

from __future__ import annotations

from app.bootstrap import build_services, make_directory
from app.config import load_settings
from app.core.attempts import DatabaseAttempts, RedisAttempts
from app.core.directory import LocalDirectory
from app.core.push_events import NoPushEvents, RedisPushEvents
from radius.upstream import UpstreamRadiusDirectory


def settings(tmp_path, **values):
    return load_settings({"instance_dir": tmp_path / "instance", **values}, environ={})


def test_the_directory_the_settings_name(tmp_path):
    assert isinstance(make_directory(settings(tmp_path)), LocalDirectory)
    upstream = make_directory(settings(tmp_path, directory="radius",
                                       upstream_radius_servers=("127.0.0.1:18120",),
                                       upstream_radius_secret="s" * 16))
    assert isinstance(upstream, UpstreamRadiusDirectory)


def test_build_services(tmp_path):
    plain = settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'a.sqlite3'}")
    services = build_services(plain)
    try:
        assert services.settings is plain
        assert services.db.url == plain.database_url
        assert isinstance(services.directory, LocalDirectory)
        assert isinstance(services.push_events, NoPushEvents)
        assert isinstance(services.attempts, DatabaseAttempts)
        assert services.keys.keyed_hash("x", "y") == build_services(plain).keys.keyed_hash(
            "x", "y")
    finally:
        services.db.dispose()
    with_redis = build_services(settings(tmp_path, redis_url="redis://127.0.0.1:1/0",
                                         ratelimit_key_prefix="staging"))
    assert isinstance(with_redis.push_events, RedisPushEvents)
    assert with_redis.push_events.channel.startswith("staging:")
    assert isinstance(with_redis.attempts, RedisAttempts)  # the VPN door's failure counters
