"""Logs: text for the demo, one JSON object per line in production, with each request's id.

The request id comes from X-Request-ID when a trusted proxy (UM2FA_TRUSTED_PROXIES) sent a
well-formed one, else it is generated; it is echoed in the response's X-Request-ID and put on
every log line written while the request is handled. Audit lines (already JSON, from
app.core.audit) have their fields lifted into the JSON object.

Entry points call `configure(settings.log_format)`: wsgi.py (gunicorn), and the CLI's servers.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, current_app, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{8,128}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
_HANDLER_MARK = "_um2fa_handler"


def new_request_id() -> str:
    return secrets.token_hex(16)


def current_request_id() -> str:
    if has_request_context():
        return g.get("request_id") or ""
    return ""


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or "-") on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id() or "-"
        return True


def _timestamp(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (+ audit fields)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {"time": _timestamp(record.created), "level": record.levelname,
                                 "logger": record.name, "message": message,
                                 "request_id": getattr(record, "request_id", "") or None}
        if record.name == "um2fa.audit" and message.startswith("{"):
            try:
                fields = json.loads(message)
            except ValueError:
                fields = None
            if isinstance(fields, dict):
                entry["message"] = f"{fields.get('audit', '')} {fields.get('result', '')}"
                entry.update({k: v for k, v in fields.items() if k not in entry})
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update({k: v for k, v in extra.items() if k not in entry})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    text = logging.Formatter(TEXT_FORMAT)
    text.converter = time.gmtime
    return text


def configure(log_format: str = "text", level: int | str = logging.INFO,
              stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records to `stream` (stderr) in `log_format`. Idempotent: a
    handler installed by an earlier call is replaced; other handlers are left alone."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return handler


# --- the request id in the web app --------------------------------------------------------

def _take_request_id() -> None:
    from app.web import addresses

    given = request.headers.get(REQUEST_ID_HEADER, "")
    trusted = addresses.in_networks(request.remote_addr or "",
                                    current_app.config["UM2FA"].trusted_proxies)
    g.request_id = given if trusted and REQUEST_ID_RE.fullmatch(given) else new_request_id()


def _echo_request_id(response):
    if "request_id" in g:
        response.headers[REQUEST_ID_HEADER] = g.request_id
    return response


def init_app(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _take_request_id)
    app.after_request(_echo_request_id)


# --- gunicorn -----------------------------------------------------------------------------

def gunicorn_logger_class(log_format: str) -> type:
    """A gunicorn logger whose access lines carry the request id (and are JSON with "json")."""
    from gunicorn.glogging import Logger

    class UM2FALogger(Logger):
        def setup(self, cfg) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                for handler in log.handlers:
                    handler.setFormatter(formatter(log_format))
                    handler.addFilter(RequestIdFilter())

        def access(self, resp, req, environ, request_time) -> None:
            if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict
                    or self.cfg.syslog):
                return
            headers = dict((k.lower(), v) for k, v in (resp.headers or []))
            request_id = headers.get(REQUEST_ID_HEADER.lower(), "-")
            status = str(resp.status).split(None, 1)[0] if resp.status else "-"
            line = {"remote": environ.get("REMOTE_ADDR", "-"),
                    "method": environ.get("REQUEST_METHOD", "-"),
                    "path": environ.get("PATH_INFO", "-"),  # no query: it may carry a code
                    "status": int(status) if status.isdigit() else status,
                    "bytes": getattr(resp, "sent", None),
                    "duration_ms": round(request_time.total_seconds() * 1000, 1),
                    "agent": environ.get("HTTP_USER_AGENT", "")[:200]}
            message = " ".join(f"{k}={v}" for k, v in line.items() if k != "agent")
            try:
                self.access_log.info(message, extra={"request_id": request_id, "fields": line})
            except Exception:  # noqa: BLE001 - gunicorn's own access() swallows errors too
                self.error(f"failed to log the request {line['path']}")

    return UM2FALogger
