"""`secret_key` and `encryption_key` in the instance directory, and the error for a key a node
lacks.

On SQLite (one machine) a missing key is made on first start. With a shared database
(UM2FA_DATABASE_URL is not SQLite) several nodes may serve one service and each must have the
same keys: one that made its own would refuse the others' forms and could not read a device's
secret. There no command makes a key by itself: a missing one is `MissingKeys`, which says how to
get it (copy the first node's, or make them once with `um2fa keys generate`: app/cli/keys.py).
The SAML and VAPID keys follow the same rule (saml/keys.py, app/core/webpush.py,
app/shared_keys.py).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from app.config.files import private_directory
from app.config.settings import ConfigError

# Their file names in the instance directory, and the settings' names (UM2FA_SECRET_KEY, …).
NAMES = ("secret_key", "encryption_key")
HOW_TO_GET_KEYS = ("With a shared database (UM2FA_DATABASE_URL is not SQLite) no command makes "
                   "keys by itself, so that every node has the same ones: copy them from a node "
                   "that has them (docs/deploy.md, \"3. Shared keys\"), or, when no node has "
                   "them yet, make them once with `um2fa keys generate` and copy them to the "
                   "others.")


class MissingKeys(ConfigError):
    """This node lacks keys it needs and may not make (a shared database)."""

    def __init__(self, missing: Sequence[str]) -> None:
        self.missing = tuple(missing)
        super().__init__(f"this node has no {'; no '.join(self.missing)}. {HOW_TO_GET_KEYS}")


def where(instance_dir: Path, name: str) -> str:
    """How an error names `secret_key` or `encryption_key`: both places it may come from."""
    return f"{name} (UM2FA_{name.upper()} or {instance_dir / name})"


def read_key(instance_dir: Path, name: str) -> str | None:
    path = instance_dir / name
    return path.read_text().strip() if path.exists() else None


def make_key(instance_dir: Path, name: str) -> str:
    """A new key (32 random bytes, URL-safe base64: 43 characters) in the instance directory,
    or the one already there: never overwritten."""
    private_directory(instance_dir)
    path = instance_dir / name
    # Written whole under a private name, then linked into place: several processes starting
    # at once (web and RADIUS units on first boot) end up with the one key that won, and none
    # reads a half-written file.
    key = secrets.token_urlsafe(32)
    scratch = instance_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(scratch, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        scratch.unlink(missing_ok=True)
    return key
