"""The instance directory is private: directories 0700, files 0600, made so by the app itself
whatever the umask (the systemd units' UMask=0077 is a second line, not the only one).

A directory or file we own that is looser is tightened at start; one owned by someone else
(root made it for us, say) is left alone."""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def _tighten(path: Path, mode: int) -> None:
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o777 & ~mode:
        os.chmod(path, info.st_mode & mode)


def private_directory(path: Path) -> Path:
    """Make `path` (its parents as the umask says) and make it ours only."""
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    _tighten(path, DIRECTORY_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create `path` empty if it is missing (SQLite then opens it, and gives its -wal and -shm
    files the same mode), and make it readable by its owner only."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        _tighten(path, FILE_MODE)
    return path


def write_private(path: Path, data: bytes) -> None:
    """A new file, readable by its owner only from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
