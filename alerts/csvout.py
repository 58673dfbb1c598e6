"""Every CSV the service writes goes through here, so no cell is read as a formula.

OWASP's rule for CSV injection: a cell that starts with = + - @ tab or carriage return
is prefixed with a single quote, so a spreadsheet shows it as text instead of running it.
One step further: also when those come after leading spaces or line breaks (LibreOffice
and Google Sheets trim them before deciding), and their full-width forms (＝ ＋ － ＠),
which some spreadsheet locales read as the ASCII ones.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, TextIO

_TRIGGERS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
_LEADING = " \t\r\n\x0b\x0c\u00a0\u3000"


def cell(value: Any) -> Any:
    """A text cell made inert; numbers and empty values pass as they are."""
    if isinstance(value, str) and value and (
        value[0] in _TRIGGERS or value.lstrip(_LEADING)[:1] in _TRIGGERS
    ):
        return "'" + value
    return value


class Writer:
    """csv.writer with every cell neutralised."""

    def __init__(self, out: TextIO, **fmt: Any) -> None:
        self._w = csv.writer(out, **fmt)

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([cell(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def drain(buf: io.StringIO) -> str:
    """What a streamed export has written so far, handed out once and cleared from the buffer."""
    text = buf.getvalue()
    buf.seek(0)
    buf.truncate()
    return text
