"""gunicorn settings for the UM 2FA web app (docs/deploy.md).

    gunicorn -c deploy/gunicorn.conf.py wsgi:app

Read from the environment: UM2FA_BIND (default 127.0.0.1:8000: the TLS proxy in front is the
only client), UM2FA_WORKERS (default 2 x CPUs + 1, at most 16), UM2FA_THREADS (default 4), and
every UM2FA_* setting of the app itself: forwarded_allow_ips is UM2FA_TRUSTED_PROXIES, the
access log is JSON with the request id when UM2FA_LOG_FORMAT=json.
"""

import multiprocessing
import os

from app.config import ConfigError, load_settings
from app.logging_setup import gunicorn_logger_class

try:
    _settings = load_settings()
except ConfigError as exc:  # a clear line and exit status 1, not gunicorn's traceback
    raise SystemExit(f"Error: configuration: {exc}") from None


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else default


bind = os.environ.get("UM2FA_BIND", "127.0.0.1:8000").split(",")
workers = _int("UM2FA_WORKERS", min(multiprocessing.cpu_count() * 2 + 1, 16))
# Threads: a worker keeps serving while another request waits on the database or argon2
# (which releases the GIL). No request is held open: a page waiting for a push listens to
# `um2fa push-events` (its own asyncio process) and asks here once the push is answered.
worker_class = "gthread"
threads = _int("UM2FA_THREADS", 4)
timeout = 30
graceful_timeout = 20
keepalive = 5
# X-Forwarded-Proto (https) is taken only from the proxies the app trusts (none: from nobody).
forwarded_allow_ips = ",".join(str(net) for net in _settings.trusted_proxies)
# Logs to stderr (journald under systemd): one line per request, with its X-Request-ID.
accesslog = "-"
errorlog = "-"
loglevel = "info"
logger_class = gunicorn_logger_class(_settings.log_format)
# Request limits before the app sees anything (the app caps bodies at 1 MiB itself).
limit_request_line = 8190
limit_request_fields = 100


def on_starting(server) -> None:
    """Once, in the master, before any worker: refuse to start without the service's keys
    (with a shared database; on SQLite the IdP's signing key is made here rather than in a
    racing worker) or on an old schema (run `um2fa db upgrade` first)."""
    from app import migrate, shared_keys

    try:
        shared_keys.require(_settings, shared_keys.WEB)
    except ConfigError as exc:
        raise SystemExit(f"Error: configuration: {exc}") from None
    if migrate.current(_settings.database_url) != migrate.heads():
        raise SystemExit("the database schema is not current: run `um2fa db upgrade`")
control_socket_disable = True  # gunicorn >= 25.1 would open one shared socket per user
