"""Passwords and user attributes from an LDAP directory (docs/ldap.md).

Two ways to find the user's entry: a DN template (bind straight as
`uid={username},ou=people,...`), or search-then-bind (a service account searches `base_dn` with
`user_filter`, then we bind as the entry found). The username is escaped for where it goes (a
DN value or a filter value), so it can never change the DN or the filter's structure.

Two pools of open connections, never mixed: searches run on the service account's (bounded
by `ldap_pool_size`), user binds on connections used for nothing but user binds (bounded by
`ldap_bind_pool_size`), so a password check costs one bind round trip, and a connection last
bound as one user is never asked anything in that user's name again. A pooled connection that
the server dropped (restart, idle timeout) is replaced once, transparently. When the server
cannot be reached, TLS fails, or it answers busy/unavailable, DirectoryUnavailable is raised.
"""

from __future__ import annotations

import logging
import os
import re
import ssl
import weakref
from typing import Any
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError, LDAPInvalidFilterError
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from app.config import Settings
from app.core.directory import DirectoryUnavailable, DirectoryUser
from app.core.ldap_pool import LdapPool
from app.core.ldap_pool import close as _close

log = logging.getLogger("um2fa.ldap")

# Result codes that mean "this password does not open this entry".
# Others (strongerAuthRequired: the server wants TLS; busy; unavailable) mean it cannot answer.
_REFUSED = {
    19,  # constraintViolation (e.g. ppolicy: password expired)
    32,  # noSuchObject
    34,  # invalidDNSyntax
    48,  # inappropriateAuthentication
    49,  # invalidCredentials
    50,  # insufficientAccessRights
    53,  # unwillingToPerform (e.g. an account disabled by policy)
}
# Result codes that mean the server cannot answer now: busy, unavailable, other.
_UNWELL = {51, 52, 80}
_MAX_USERNAME = 256
# The DN bound as when a username matches no entry (check_password): under the base DN, an
# entry no directory holds.
_NO_SUCH_USER_RDN = "cn=um2fa-no-such-user-7f3c9e"
_GENERALIZED_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{6}(\.\d+)?)?(Z|[+-]\d{4})?")


def dn_for(template: str, username: str) -> str:
    """The user's DN from the template, the username escaped as an RDN value."""
    return template.replace("{username}", escape_rdn(username))


def filter_for(template: str, username: str) -> str:
    """The search filter, the username escaped as an assertion value (RFC 4515)."""
    return template.replace("{username}", escape_filter_chars(username))


def _usable(username: str) -> bool:
    return bool(username) and len(username) <= _MAX_USERNAME and "\x00" not in username


def _first(values: Any) -> str | None:
    if isinstance(values, list | tuple):
        values = values[0] if values else None
    if values is None:
        return None
    if isinstance(values, bytes):
        values = values.decode("utf-8", "replace")
    text = str(values).strip()
    return text or None


def _role(values: Any, known: tuple[str, ...] = ("student", "staff")) -> str | None:
    """A multi-valued role (e.g. eduPersonAffiliation): the first value that is a role we know,
    else the first value."""
    items = values if isinstance(values, list | tuple) else [values]
    names = [v.strip().lower() for v in (_first(i) for i in items) if v]
    return next((n for n in names if n in known), names[0] if names else None)


def _dob(values: Any) -> str | None:
    """YYYY-MM-DD as stored, or a GeneralizedTime / YYYYMMDD value turned into that form."""
    text = _first(values)
    if text is None:
        return None
    match = _GENERALIZED_DATE.fullmatch(text)
    return f"{match[1]}-{match[2]}-{match[3]}" if match else text


def _id_last4(values: Any) -> str | None:
    """The last 4 letters or digits: the attribute may hold the whole ID/passport number."""
    text = _first(values)
    if text is None:
        return None
    chars = "".join(c for c in text if c.isalnum()).upper()
    return chars[-4:] or None


class LdapDirectory:
    """The Directory protocol against an LDAP server. Thread-safe; one per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        parts = urlsplit(settings.ldap_url)
        self._host = parts.hostname or ""
        self._use_ssl = parts.scheme == "ldaps"
        self._port = parts.port or (636 if self._use_ssl else 389)
        self._timeout = settings.ldap_timeout
        self._tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=settings.ldap_ca_file or None)
        self._attributes = dict(settings.ldap_attributes)
        # Two pools, never mixed: the service account's searches, and the users' binds.
        self._service = LdapPool(settings.ldap_pool_size, self._timeout, "service-account")
        self._binds = LdapPool(settings.ldap_bind_pool_size, self._timeout, "user-bind")
        # A forked child (RADIUS workers, gunicorn --preload) must not share the parent's
        # sockets: it forgets the inherited pool and opens its own.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (d := ref()) and d._forget_pools())

    # -- the Directory protocol ------------------------------------------------------------

    def check_password(self, username: str, password_hash: str | None, password: str) -> bool:
        """password_hash is ignored: the directory holds the password."""
        username = username.strip()
        if not password or not _usable(username):
            return False  # an empty password would be an unauthenticated bind (RFC 4513 5.1.2)
        dn = self._user_dn(username)
        if dn is None:
            # No such user: bind anyway, as a DN that names no entry, so that an unknown
            # username costs the same round trips (a bind on a pooled connection) as a known
            # one with a wrong password, and the answer's time does not tell them apart.
            self._bind_as(self._no_such_user_dn(), password)
            return False
        return self._bind_as(dn, password)

    def lookup(self, username: str) -> DirectoryUser | None:
        username = username.strip()
        if not _usable(username):
            return None
        wanted = [a for a in self._attributes.values() if a]
        entry = self._find(username, wanted)
        return None if entry is None else self._user_of(username, entry[1])

    def member_of(self, username: str, group_dn: str) -> bool:
        """Whether the user's entry is a `member` of the group (groupOfNames): one base
        search on the group (the console's roles: UM2FA_ADMIN_GROUPS_*)."""
        username = username.strip()
        dn = self._user_dn(username) if _usable(username) else None
        if dn is None or not group_dn:
            return False
        code, description, entries = self._search(
            group_dn, f"(member={escape_filter_chars(dn)})", BASE, ["1.1"])
        if code in (0, 32, 34):  # found or not; noSuchObject / invalidDNSyntax: no such group
            return code == 0 and len(entries) == 1
        raise DirectoryUnavailable(f"LDAP search failed: {description}")

    # -- finding the entry -----------------------------------------------------------------

    def _user_dn(self, username: str) -> str | None:
        if self.settings.ldap_user_dn_template:
            return dn_for(self.settings.ldap_user_dn_template, username)
        entry = self._find(username, [])
        return entry[0] if entry else None

    def _no_such_user_dn(self) -> str:
        return ",".join(p for p in (_NO_SUCH_USER_RDN, self.settings.ldap_base_dn) if p)

    def _find(self, username: str, attributes: list[str]) -> tuple[str, dict[str, Any]] | None:
        """(dn, attributes) of the one entry for this username, or None."""
        template = self.settings.ldap_user_dn_template
        if template:
            base, scope, flt = dn_for(template, username), BASE, "(objectClass=*)"
        else:
            base, scope = self.settings.ldap_base_dn, SUBTREE
            flt = filter_for(self.settings.ldap_user_filter, username)
        code, description, entries = self._search(base, flt, scope, attributes or ["1.1"])
        if code in (32, 34):  # noSuchObject / invalidDNSyntax: no such user
            return None
        if code not in (0, 4):  # 4: sizeLimitExceeded, i.e. more than one entry
            raise DirectoryUnavailable(f"LDAP search failed: {description}")
        if len(entries) != 1:
            if len(entries) > 1:
                log.warning("LDAP: more than one entry matches a username; refusing it")
            return None
        return entries[0]["dn"], dict(entries[0].get("attributes") or {})

    def _user_of(self, username: str, attrs: dict[str, Any]) -> DirectoryUser:
        def read(field: str) -> Any:
            name = self._attributes.get(field, "")
            return attrs.get(name) if name else None

        return DirectoryUser(
            username=(_first(read("username")) or username).strip().lower(),
            display_name=_first(read("name")), email=_first(read("mail")),
            given_name=_first(read("given_name")), surname=_first(read("surname")),
            role=_role(read("role")) if self._attributes.get("role") else None,
            dob=_dob(read("dob")), id_last4=_id_last4(read("id_last4")))

    # -- connections -----------------------------------------------------------------------

    def _server(self) -> Server:
        return Server(self._host, port=self._port, use_ssl=self._use_ssl, tls=self._tls,
                      get_info=NONE, connect_timeout=self._timeout)

    def _open(self, user: str | None, password: str | None) -> Connection:
        """An open, TLS-protected (as configured) and bound connection; raises LDAPException
        or OSError when the server cannot be reached, DirectoryUnavailable when it is unwell,
        and returns an unbound connection when the credentials are refused."""
        conn = Connection(self._server(), user=user, password=password,
                          authentication=SIMPLE if user else None, auto_bind=False,
                          raise_exceptions=False, receive_timeout=self._timeout,
                          read_only=True, check_names=True)
        conn.open()
        try:
            if self.settings.ldap_starttls and not conn.start_tls():
                raise DirectoryUnavailable("LDAP StartTLS refused")
            conn.bind()
        except BaseException:
            _close(conn)
            raise
        return conn

    def _bind_as(self, dn: str, password: str) -> bool:
        """A user bind on a pooled connection that is only ever used for user binds: one bind
        round trip. A pooled connection that no longer works (the server restarted or timed
        it out) is closed and the bind made on a fresh one (TCP, StartTLS, the bind), once."""
        with self._binds.slot():
            conn = self._binds.take()
            code = None if conn is None else self._rebind(conn, dn, password)
            if conn is None or code is None:
                try:
                    conn = self._open(dn, password)
                except LDAPInvalidDnError:
                    return False  # a username no DN can be made of is no user
                except (LDAPException, OSError) as exc:
                    raise self._unavailable(exc) from exc
                _forget_password(conn)
                self._binds.opening()
                code = conn.result.get("result")
            if conn.bound or code in _REFUSED:
                # bound as this user, or (refused) anonymous: either way its next use is
                # another user's bind, which replaces the identity before anything is asked
                self._binds.give_back(conn)
                return bool(conn.bound)
            _close(conn)
            description = conn.result.get("description")
            log.error("LDAP directory unavailable: a user bind answered %s", description)
            raise DirectoryUnavailable(f"LDAP bind failed: {description}")

    def _rebind(self, conn: Connection, dn: str, password: str) -> int | None:
        """Bind again on a pooled connection: the result code, or None (the connection is
        closed) when it no longer works. Never on a connection that lost its TLS: ldap3 would
        reopen it in clear."""
        if conn.closed or (self.settings.ldap_starttls and not conn.tls_started):
            _close(conn)
            return None
        conn.user, conn.password, conn.authentication = dn, password, SIMPLE
        try:
            conn.bind(read_server_info=False)
        except (LDAPException, OSError):
            _close(conn)
            return None
        finally:
            _forget_password(conn)
        code = (conn.result or {}).get("result")
        if code in _UNWELL or code is None:
            _close(conn)
            return None
        return code

    def _search(self, base: str, flt: str, scope: str,
                attributes: list[str]) -> tuple[int, str, list[dict[str, Any]]]:
        """A search on a pooled service-account connection: (result code, description,
        entries). A pooled connection that no longer works (the server restarted or timed it
        out) is dropped and the search made again on a fresh one, once."""
        with self._service.slot():
            for attempt in range(2):
                conn = (self._service.take() if attempt == 0 else None) or self._new_service()
                try:
                    conn.search(base, flt, scope, attributes=attributes, size_limit=2,
                                time_limit=self._timeout)
                except (LDAPInvalidDnError, LDAPInvalidFilterError):
                    self._service.give_back(conn)
                    return 32, "no such object", []  # no entry has such a name
                except (LDAPException, OSError) as exc:
                    _close(conn)
                    if attempt:
                        raise self._unavailable(exc) from exc
                    continue
                result = conn.result or {}
                code, description = result.get("result", 80), str(result.get("description"))
                if code in _UNWELL:
                    _close(conn)
                    if attempt:
                        raise DirectoryUnavailable(f"LDAP search failed: {description}")
                    continue
                entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
                self._service.give_back(conn)
                return code, description, entries
            raise AssertionError("unreachable")

    def _new_service(self) -> Connection:
        try:
            conn = self._open(self.settings.ldap_bind_dn or None,
                              self.settings.ldap_bind_password or None)
        except (LDAPException, OSError) as exc:
            raise self._unavailable(exc) from exc
        if self.settings.ldap_bind_dn and not conn.bound:
            description = conn.result.get("description")
            _close(conn)
            log.error("LDAP directory unavailable: the service account bind answered %s",
                      description)
            raise DirectoryUnavailable(f"LDAP service account bind failed: {description}")
        self._service.opening()
        return conn

    def pool_info(self) -> dict[str, dict[str, int]]:
        """The two pools: connections opened so far, idle now, and the bound."""
        return {"service": self._service.info(), "binds": self._binds.info()}

    def _forget_pools(self) -> None:
        self._service.forget()
        self._binds.forget()

    def close(self) -> None:
        self._service.close()
        self._binds.close()

    @staticmethod
    def _unavailable(exc: BaseException) -> DirectoryUnavailable:
        if isinstance(exc, DirectoryUnavailable):
            return exc
        log.error("LDAP directory unavailable: %s: %s", type(exc).__name__, exc)
        return DirectoryUnavailable(f"LDAP directory unavailable ({type(exc).__name__})")


def _forget_password(conn: Connection) -> None:
    """ldap3 keeps the last bind's password on the connection (and in its last request): not on
    one that stays open in a pool."""
    conn.password = None
    conn.request = None
