"""Every CSV the service writes goes through here, so no cell is read as a formula.

OWASP's rule for CSV injection: a cell that starts with = + - @ tab or carriage return
is prefixed with a single quote, so a spreadsheet shows it as text instead of running it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """A text cell made inert; numbers and empty values pass as they are."""
    if isinstance(value, str) and value[:1] in _TRIGGERS:
        return "'" + value
    return value


class Writer:
    """csv.writer with every cell neutralised."""

    def __init__(self, out: TextIO, **fmt):
        self._w = csv.writer(out, **fmt)

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)
