"""The one place that builds the core services from the settings: the database, the instance
keys, the directory (local, LDAP or upstream RADIUS), the push fan-out and the failure counters
(Redis or the database: app/core/attempts.py).

Every door gets its CoreServices here: the web app (app/extensions.py), the RADIUS server
(`um2fa radius`, radius/cli.py), the command line (through the web app's extension) and the
benchmarks. It lives in app/, not app/core, because it may build the upstream RADIUS directory,
which speaks RADIUS with pyrad (radius/upstream.py); app/core imports no Flask, pyrad or SAML.
"""

from __future__ import annotations

from app import i18n
from app.config import Settings
from app.core.attempts import make_attempts
from app.core.directory import Directory, LocalDirectory
from app.core.keys import Keys
from app.core.push_events import make_push_events
from app.core.services import CoreServices
from app.core.session_store import make_store
from app.db import Database


def make_directory(settings: Settings) -> Directory:
    """The directory that `settings.directory` names."""
    if settings.directory == "ldap":
        from app.core.directory_ldap import LdapDirectory  # ldap3 only when it is used

        return LdapDirectory(settings)
    if settings.directory == "radius":
        from radius.upstream import UpstreamRadiusDirectory  # pyrad only when it is used

        return UpstreamRadiusDirectory(settings)
    return LocalDirectory()


def build_services(settings: Settings) -> CoreServices:
    """The CoreServices that `settings` describe (the clock is the system's)."""
    i18n.configure(settings.default_language, settings.timezone)
    return CoreServices(
        db=Database(settings.database_url), settings=settings,
        keys=Keys(settings.encryption_key), directory=make_directory(settings),
        push_events=make_push_events(settings.redis_url, settings.ratelimit_key_prefix),
        sessions=make_store(settings.session_store, settings.redis_url,
                            settings.ratelimit_key_prefix),
        attempts=make_attempts(settings.redis_url, settings.ratelimit_key_prefix))
