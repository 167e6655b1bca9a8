"""The keys every node of one service shares, in one list (docs/deploy.md, "3. Shared keys"):
which of them a node lacks for what it serves, and making the missing ones
(`um2fa keys generate`, app/cli/keys.py).

- `secret_key`, `encryption_key` (UM2FA_* or the instance directory): every command
  (load_settings);
- the SAML signing key and the SAML encryption key (<instance>/saml/): web nodes;
- the VAPID key (<instance>/vapid_private.pem): web nodes, and RADIUS nodes, since a VPN push
  wakes the phone from there.

On SQLite (one machine) a missing key is made where it is first needed. With a shared database
(UM2FA_DATABASE_URL is not SQLite) nothing makes a key by itself: a node that lacks one refuses
to start (`require`), saying how to get it (app/config/keyfiles.py: MissingKeys).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.config import Settings, keyfiles
from app.core import webpush
from saml import keys as saml_keys

WEB = "web"
RADIUS = "radius"


@dataclass(frozen=True)
class SharedKey:
    name: str
    doors: tuple[str, ...]  # the nodes that need it at start (every command needs the first two)
    where: Callable[[Settings], str]  # how an error names it
    present: Callable[[Settings], bool]  # in this node's instance directory, or in a setting
    make: Callable[[Settings], object]


def _instance_key(name: str) -> SharedKey:
    def present(settings: Settings) -> bool:
        return bool(getattr(settings, name)) \
            or keyfiles.read_key(settings.instance_dir, name) is not None

    return SharedKey(name, (WEB, RADIUS), lambda s: keyfiles.where(s.instance_dir, name),
                     present, lambda s: keyfiles.make_key(s.instance_dir, name))


def _common_name(settings: Settings) -> str:
    return settings.base_url or "um2fa"


def _saml_key(prefix: str) -> SharedKey:
    kind = "encryption" if prefix == saml_keys.ENCRYPTION else "signing"
    return SharedKey(f"SAML {kind} key", (WEB,),
                     lambda s: saml_keys.where(s.instance_dir, prefix),
                     lambda s: saml_keys.exists(s.instance_dir, prefix),
                     lambda s: saml_keys.generate(s.instance_dir, _common_name(s), prefix))


KEYS = (
    _instance_key("secret_key"),
    _instance_key("encryption_key"),
    _saml_key(saml_keys.SIGNING),
    _saml_key(saml_keys.ENCRYPTION),
    SharedKey("VAPID key", (WEB, RADIUS), webpush.where,
              lambda s: webpush.key_path(s).exists(),
              lambda s: webpush.make_key_file(webpush.key_path(s))),
)


def require(settings: Settings, door: str) -> None:
    """At a web (WEB) or RADIUS node's start, before it serves. On SQLite the IdP's signing
    key is made now rather than at the first sign-in; with a shared database a key the node
    needs and lacks stops it: MissingKeys, naming each."""
    if settings.makes_keys:
        if door == WEB:
            saml_keys.load_all(settings.instance_dir, _common_name(settings), make=True)
        return
    lacking = [key.where(settings) for key in KEYS
               if door in key.doors and not key.present(settings)]
    if lacking:
        raise keyfiles.MissingKeys(lacking)


@dataclass(frozen=True)
class Made:
    made: list[str]  # the names of the keys made now
    kept: list[str]  # the names of those already there (or given by UM2FA_* settings)


def make_missing(settings: Settings) -> Made:
    """Every shared key this node lacks, made; none that exists is touched, and a key given by
    a setting (UM2FA_SECRET_KEY, …) is not written to a file. `settings` from `read_settings`:
    there may be no keys yet, and no database is reached."""
    made, kept = [], []
    for key in KEYS:
        if key.present(settings):
            kept.append(key.name)
        else:
            key.make(settings)
            made.append(key.name)
    return Made(made, kept)
