"""Progress bars for long commands (`users import`, `users export`): click's bar on standard
error when it is a terminal, nothing otherwise (a pipe, a log file, cron): core tasks report
through app/core/progress.py and never know which."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

import click

from app.core.progress import Phase, Progress, silent


def terminal(stream: IO[str] | None = None) -> Progress:
    """A Progress that draws on `stream` (standard error) when it is a terminal."""
    out = stream if stream is not None else sys.stderr
    if not out.isatty():
        return silent

    @contextmanager
    def bar(label: str, total: int) -> Iterator[Phase]:
        with click.progressbar(length=max(total, 1), label=label.ljust(18), file=out,
                               show_eta=True, show_percent=True) as shown:
            yield shown

    return bar
