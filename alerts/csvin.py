"""Reading an uploaded or opened CSV file: the one reader behind every CSV import.

The whole file is read once before any row is handed out, so a file that cannot be read
(not UTF-8, a NUL character, a line or field over the limits, too many rows, no header)
is refused with `CsvFileError` naming its line before anything is applied. Then the rows
come one by one as `Record`s, numbered by the file line they start on.

A quote (") that opens in a row and is never closed would make the csv module read every
row below it as one value. Such a row comes out marked `unclosed`, holding its own line
alone, and the rows it swallowed are read again each on its own: nothing is dropped in
silence. A quoted value that is closed is one value, newlines and all.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

FIELD_MAX = 131_072  # characters in one value (the csv module's own limit)
LINE_MAX_BYTES = 4 * 1024 * 1024
ROWS_MAX = 2_000_000
DELIMITERS = (",", ";", "\t")
_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


class CsvFileError(ValueError):
    """The file as a whole cannot be read; the message names the line and the problem."""


@dataclass(frozen=True)
class Record:
    line: int  # the file line the row starts on (the header is line 1)
    end: int  # the last file line the row was read from
    cells: list[str]
    text: str  # the row's first line as it stands, for showing it
    unclosed: bool = False  # a quote opened here and was never closed: `cells` are this line's alone


def delimiter_of(header_line: str) -> str:
    """Comma, or the semicolon or tab that some spreadsheet programs write instead."""
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


class _Lines:
    """The file's lines, decoded and checked, numbered, with a way to read some of them again."""

    def __init__(self, stream: BinaryIO | TextIO):
        self.stream = stream
        self.number = 0
        self.again: list[tuple[int, str]] = []
        self.current: list[tuple[int, str]] = []
        self.pending: list[str] = []  # the pieces of a line split at a lone carriage return
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def _read(self) -> str:
        if self.pending:
            return self.pending.pop(0)
        raw = self.stream.readline(LINE_MAX_BYTES + 1)
        if not raw:
            return ""
        number = self.number + 1
        if len(raw) > LINE_MAX_BYTES:
            raise CsvFileError(f"line {number} is longer than {LINE_MAX_BYTES // (1024 * 1024)} MiB")
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CsvFileError(
                    f"line {number} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte "
                    f"{exc.start + 1}); save the file as \"CSV UTF-8\" and try again"
                ) from exc
        else:
            text = raw
        if number == 1:
            text = text.removeprefix("\ufeff")
        if "\x00" in text:
            raise CsvFileError(f"line {number} holds a NUL character (0x00), which is not text")
        pieces = _LONE_CR.split(text)  # old Mac files end lines with a carriage return alone
        self.pending = pieces[1:]
        return pieces[0]

    def __next__(self) -> str:
        if self.again:
            item = self.again.pop(0)
        else:
            text = self._read()
            if not text:
                self.ended = True
                raise StopIteration
            self.number += 1
            item = (self.number, text)
        self.current.append(item)
        return item[1]

    def take(self) -> list[tuple[int, str]]:
        """The (number, text) lines the last record was read from."""
        taken, self.current = self.current, []
        return taken

    def push_back(self, items: list[tuple[int, str]]) -> None:
        self.again = items + self.again
        self.ended = False


class CsvTable:
    """An opened CSV file: its header, its delimiter, then its rows."""

    def __init__(self, stream: BinaryIO | TextIO, *, key: int | None = None):
        self.stream = stream
        self.lines = _Lines(stream)
        header_line = next(self.lines, "")
        self.lines.take()
        if not header_line.strip():
            raise CsvFileError("the file has no header row; its first line must name the email column")
        self.delimiter = delimiter_of(header_line)
        self.header = _parse_line(header_line, self.delimiter)
        self.key = key

    def records(self) -> Iterator[Record]:
        """The rows that hold anything (blank lines are skipped), in file order."""
        lines = self.lines
        reader = csv.reader(lines, delimiter=self.delimiter, strict=True)
        rows = 0
        while True:
            failed = False
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                if "field larger than field limit" in str(exc) and len(lines.current) == 1:
                    raise CsvFileError(
                        f"line {lines.current[0][0]} has a value longer than {FIELD_MAX:,} characters"
                    ) from exc
                # Over more lines than one: a quote left open (read again below).
                failed, cells = True, []
            consumed = lines.take()
            if not consumed:
                return
            first, text = consumed[0]
            if failed:
                # Not strict CSV: a quote left open to the end of the file, or a quote followed
                # by more text. Read leniently, it is still one row if it has a key of its own.
                joined = "".join(t for _, t in consumed)
                try:
                    lenient = list(csv.reader(io.StringIO(joined, newline=""), delimiter=self.delimiter))
                except csv.Error:
                    lenient = []
                ok = not lines.ended and len(lenient) == 1 and (
                    len(consumed) == 1 or self._keyed(lenient[0]))
                if ok:
                    cells = lenient[0]
                else:
                    rows = _counted(rows, first)
                    yield self._unclosed(consumed)
                    continue
            elif len(consumed) > 1 and not self._keyed(cells):
                # A quote that closes lines below, leaving the row no key of its own: it was left
                # open and swallowed the rows below it.
                rows = _counted(rows, first)
                yield self._unclosed(consumed)
                continue
            if not any(cell.strip() for cell in cells):
                continue
            rows = _counted(rows, first)
            yield Record(first, consumed[-1][0], cells, text)

    def _keyed(self, cells: list[str]) -> bool:
        """The row has a key cell of its own: present, not blank, on one line."""
        if self.key is None:
            return True
        cell = cells[self.key] if self.key < len(cells) else ""
        return bool(cell.strip()) and "\n" not in cell and "\r" not in cell

    def _unclosed(self, consumed: list[tuple[int, str]]) -> Record:
        """The row whose quote never closed, on its own line; the lines it swallowed are read again."""
        first, text = consumed[0]
        self.lines.push_back(consumed[1:])
        return Record(first, consumed[-1][0], _parse_line(text, self.delimiter, first), text, unclosed=True)

    def check(self) -> int:
        """Read every row, so that an unreadable one is an error now; return the rows read."""
        return sum(1 for _ in self.records())


def _counted(rows: int, line: int) -> int:
    if rows >= ROWS_MAX:
        raise CsvFileError(f"line {line}: the file has more than {ROWS_MAX:,} rows; split it")
    return rows + 1


def _parse_line(text: str, delimiter: str, line: int = 1) -> list[str]:
    """One line on its own, leniently (an open quote runs to its end)."""
    try:
        return next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), [])
    except csv.Error as exc:  # only a value over the limit on this one line
        raise CsvFileError(f"line {line} has a value longer than {FIELD_MAX:,} characters") from exc


def open_table(stream: BinaryIO | TextIO, *,
               key_of: Callable[[list[str]], int] | None = None) -> CsvTable:
    """Check the whole file, then open it for reading its rows (the stream must be seekable).

    `key_of(header)` says which column holds each row's key (the email address); a row that
    spans lines without a key of its own on one line is read as an unclosed quote. It may
    raise an error of its own, for a header without the column.
    Raises CsvFileError naming the line and the problem.
    """
    start = stream.tell()
    if not stream.read(1):
        raise CsvFileError("the file is empty; it needs a header row naming the email column")
    stream.seek(start)
    table = CsvTable(stream)
    key = key_of(table.header) if key_of is not None else None
    table.key = key
    table.check()
    stream.seek(start)
    table = CsvTable(stream, key=key)
    return table


def data_lines(stream: BinaryIO | TextIO) -> int:
    """The file's lines after the header (for a progress bar); leaves the stream where it was.

    Raises CsvFileError for a line that is not text, like the reading itself.
    """
    start = stream.tell()
    count = sum(1 for _ in _Lines(stream))
    stream.seek(start)
    return max(count - 1, 0)
