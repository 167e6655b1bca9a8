"""Flask extensions, each bound with init_app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from flask_htmx import HTMX
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from app.bootstrap import build_services
from app.config import Settings
from app.core.context import Context
from app.core.services import CoreServices
from app.db import Database

csrf = CSRFProtect()
htmx = HTMX()


class CoreExtension:
    """Holds the app's CoreServices; hands each request a core Context on its own session."""

    def init_app(self, app: Flask) -> None:
        settings: Settings = app.config["UM2FA"]
        app.extensions["um2fa"] = build_services(settings)  # app/bootstrap.py
        app.teardown_appcontext(self._close)

    @staticmethod
    def services(app: Flask | None = None) -> CoreServices:
        return (app or current_app).extensions["um2fa"]

    def database(self, app: Flask | None = None) -> Database:
        return self.services(app).db

    def context(self) -> Context:
        """The request's Context: one database session, committed once before the answer."""
        if "core_ctx" not in g:
            g.core_ctx = self._context(self.services().db.sessionmaker())
        return g.core_ctx

    @contextmanager
    def own_context(self) -> Iterator[Context]:
        """A Context on a transaction of its own, committed at the end of the block (the
        browser session is written this way, after the request's own commit)."""
        with self.services().db.session() as db:
            yield self._context(db)

    def _context(self, db: Session) -> Context:
        services = self.services()
        return Context(db=db, settings=services.settings, keys=services.keys,
                       directory=services.directory,
                       clock=current_app.config.get("UM2FA_CLOCK", time.time),
                       push_events=services.push_events, sessions=services.sessions,
                       attempts=services.attempts)

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        ctx = g.pop("core_ctx", None)
        if ctx is not None:
            try:
                ctx.db.rollback()
            finally:
                ctx.db.close()


core = CoreExtension()


def init_app(app: Flask) -> None:
    core.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
