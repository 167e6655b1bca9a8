"""How a long core task (an import, an export) says how far it is, without knowing who shows it:
the task opens a phase with a label and a total, and counts what it has done. The command line
shows a bar on a terminal (app/cli/progress.py); everyone else passes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Phase(Protocol):
    def update(self, n_steps: int) -> None: ...


class Progress(Protocol):
    def __call__(self, label: str, total: int) -> AbstractContextManager[Phase]: ...


class _Silent:
    def update(self, n_steps: int) -> None:
        pass


@contextmanager
def silent(label: str, total: int) -> Iterator[Phase]:
    """No progress shown."""
    yield _Silent()
