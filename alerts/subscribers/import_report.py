"""What a subscriber import decides and says: its consent modes, why a row was not imported, the report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TextIO

from .. import csvout
from ..words import plural

DOCUMENTED = "documented"
CONFIRM_FIRST = "confirm-first"
CONSENT_MODES = (DOCUMENTED, CONFIRM_FIRST)

SOURCE_MAX = 200  # Subscriber.source and ConsentRecord.source

# Why a row was not imported as it stands. Those in REJECTED are bad data; the rest are
# rows whose address is fine but which the import leaves as they are.
REASONS = {
    "missing-email": "no email address in the row",
    "invalid-email": "not a valid email address",
    "source-too-long": f"the source is longer than {SOURCE_MAX} characters",
    "unterminated-quote": "a quote (\") opens in this row and is never closed",
    "invalid-field": "a field's value cannot be kept as given (correct it and import the row again)",
    "duplicate": "the same address as an earlier row (counted once, there)",
    "suppressed": "on the suppression list (kept suppressed, not imported)",
    "already-confirmed": "already a confirmed subscriber (left as is, but for fields they had none of)",
    "unsubscribed": "unsubscribed earlier; an import never resubscribes anyone",
    "confirmation-recent": "already pending and sent a confirmation recently; none sent now",
    "not-queued": "pending, but the confirmation could not be queued (run the import again)",
}
REJECTED = ("missing-email", "invalid-email", "source-too-long", "unterminated-quote", "invalid-field")


class ImportFileError(ValueError):
    """The file as a whole cannot be imported (no email column, not UTF-8, empty)."""


@dataclass(frozen=True)
class Problem:
    line: int
    email: str
    reason: str
    detail: str = ""

    @property
    def text(self) -> str:
        return REASONS[self.reason] + (f": {self.detail}" if self.detail else "")


@dataclass
class ImportReport:
    consent: str
    dry_run: bool
    rows: int = 0  # data rows read (blank lines not counted)
    created: int = 0  # new subscribers
    confirmed: int = 0  # pending subscribers confirmed by a documented import
    resent: int = 0  # pending subscribers sent a fresh confirmation by a confirm-first import
    queued: int = 0  # confirmation emails queued
    welcome: bool = False  # the importer asked for the welcome email (documented consent only)
    welcomes: int = 0  # welcome emails queued (or, in a dry run, that would be)
    problems: list[Problem] = field(default_factory=list)
    reasons: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    delimiter: str = ","
    columns: dict[str, str] = field(default_factory=dict)  # field -> header used
    labels: dict[str, str] = field(default_factory=dict)  # field -> its label, for the report
    unmapped: list[tuple[int, str]] = field(default_factory=list)  # (column number, header) not imported
    filled: int = 0  # subscribers already on the list who gained fields they had none of
    # The rows' addresses (email keys) that were imported: a journey the importer names takes them.
    email_keys: list[str] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        self.problems.append(problem)
        self.reasons[problem.reason] += 1

    @property
    def rejected(self) -> int:
        return sum(self.reasons[r] for r in REJECTED)

    @property
    def duplicates(self) -> int:
        return self.reasons["duplicate"]

    @property
    def left(self) -> int:
        """Rows whose address is already known and is left as it is (repeats not counted)."""
        return sum(n for r, n in self.reasons.items() if r not in REJECTED and r != "duplicate")

    @property
    def maps_fields(self) -> bool:
        """The file has a column for a person's field (a name, a custom field, ...)."""
        return bool(set(self.columns) - {"email", "source"})

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def column_lines(self) -> list[str]:
        """Which column went to which field."""
        return [f"{header!r} -> {name}" for name, header in self.columns.items()]

    def unmapped_lines(self) -> list[str]:
        """Each column no field took: named, never dropped in silence."""
        verb = "will not be" if self.dry_run else "was not"
        return [f"column {header!r} {verb} imported" if header
                else f"column {number} (no header) {verb} imported"
                for number, header in self.unmapped]

    def summary_lines(self) -> list[str]:
        would = "would be " if self.dry_run else ""
        status = "confirmed" if self.consent == DOCUMENTED else "pending"
        lines = [
            f"{plural(self.rows, 'row')} read in {self.seconds:.1f}s"
            + (" (dry run: nothing was changed)" if self.dry_run else "") + ".",
            "Columns: " + ", ".join(self.column_lines()) + ".",
            *(f"{line}: no field takes it (--map FIELD=HEADER gives it one)."
              for line in self.unmapped_lines()),
            f"{plural(self.created, 'new subscriber')} {would}added as {status}.",
        ]
        if self.consent == DOCUMENTED:
            lines.append(f"{plural(self.confirmed, 'pending subscriber')} {would}confirmed.")
            if self.welcome:
                lines.append(f"{plural(self.welcomes, 'welcome email')} {would}queued.")
            else:
                lines.append("0 welcome emails: none was asked for, so nobody is mailed.")
        else:
            lines.append(f"{plural(self.resent, 'pending subscriber')} {would}sent a fresh confirmation.")
            lines.append(f"{plural(self.queued, 'confirmation email')} {would}queued.")
        gain = "would gain" if self.dry_run else "gained"
        if self.maps_fields:
            lines.append(f"{plural(self.filled, 'subscriber')} already on the list {gain} fields they had "
                         "none of (nothing they gave is overwritten).")
        lines.append(
            f"{plural(self.rejected, 'row')} rejected, {self.duplicates:,} repeated an earlier row, "
            f"{self.left:,} left as they are" + (", by reason:" if self.reasons else ".")
        )
        for reason in REASONS:
            if self.reasons[reason]:
                lines.append(f"  {self.reasons[reason]:>7} {reason}: {REASONS[reason]}")
        return lines


def write_problems(problems: Iterable[Problem], out: TextIO) -> None:
    """The report of rows not imported as they stand: line, email, reason, detail."""
    writer = csvout.Writer(out)
    writer.writerow(["line", "email", "reason", "detail"])
    writer.writerows([p.line, p.email, p.reason, p.text] for p in problems)
