"""The one progress display of the command line: a bar on a terminal, a line every few seconds in a log."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

LOG_EVERY_SECONDS = 2


class Progress:
    """A progress bar on stderr when it is a terminal; else a line every few seconds, and one at the end."""

    def __init__(self, total: int, label: str):
        self.total = total
        self.label = label
        self.done = 0
        self.bar: ProgressBar[int] | None = None
        self.last = 0.0

    def __enter__(self) -> Progress:
        self.last = time.monotonic()
        if sys.stderr.isatty():
            self.bar = click.progressbar(length=self.total, label=self.label, file=sys.stderr,
                                         show_pos=True, show_percent=True, show_eta=True)
            self.bar.__enter__()
        return self

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= LOG_EVERY_SECONDS:
            self.last = time.monotonic()
            self._line()

    def _line(self) -> None:
        percent = round(100 * self.done / self.total, 1) if self.total else 100.0
        click.echo(f"{self.label}: {self.done}/{self.total} ({percent}%)", err=True)

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
        elif exc[0] is None:
            self._line()
