"""Subscriber import and export: plain functions behind `alerts subscribers …` and the staff pages.

An import reads a CSV file whose header row names at least the email column, checks every
row (a valid address, not a repeat of an earlier row, not suppressed, not unsubscribed) and
applies the rest in chunks: one SELECT for the chunk's known addresses, one for its
suppressions, bulk INSERTs for the new subscribers and their consent records, one commit.

Two consent modes:

* ``documented``: the organisation holds proof of consent elsewhere (a paper petition, an
  old list). Rows become confirmed subscribers; the source is recorded on the subscriber and
  in a consent record, so it stays provable where the consent came from. Nobody is mailed
  unless the importer asks (``welcome``): then each newly confirmed subscriber is sent the
  welcome email; otherwise their welcome is settled as not wanted, so the sweep that sends
  lost welcomes does not send one minutes later.
* ``confirm-first``: rows become pending and each is sent the usual confirmation email,
  queued after the chunk's commit; nobody is mailed an alert until they confirm. The
  per-address cooldown of the signup form applies here too.

Whatever the mode, an import never resubscribes someone who unsubscribed (that was their
choice), never touches a suppressed address, and leaves confirmed subscribers as they are.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import BinaryIO, TextIO

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import csvin, csvout, queueing
from ..extensions import db
from ..models import (
    ConsentRecord,
    Subscriber,
    SubscriberStatus,
    Suppression,
    email_hash,
    email_key,
    new_token_key,
    utcnow,
)
from .subscriptions import InvalidEmail, normalize_email, release_cooldown

QUEUE_CONFIRMATIONS = "alerts.tasks.queue_confirmations"
QUEUE_EMAILS = "alerts.tasks.queue_emails"
WELCOME = "welcome"  # the email kind (alerts.welcome)

log = logging.getLogger(__name__)

DOCUMENTED = "documented"
CONFIRM_FIRST = "confirm-first"
CONSENT_MODES = (DOCUMENTED, CONFIRM_FIRST)

# The columns an import understands; `email` is required, the rest are optional.
FIELDS = ("email", "source")
# Header names recognised without a mapping, compared with case and punctuation removed
# ("E-mail Address" -> "emailaddress").
HEADER_ALIASES = {
    "email": {"email", "emailaddress", "emails", "mailaddress"},
    "source": {"source", "consentsource"},
}
SOURCE_MAX = 200  # Subscriber.source and ConsentRecord.source
CHUNK_SIZE = 2000

# Why a row was not imported as it stands. The first three are bad data (rejected); the
# rest are rows whose address is fine but which the import leaves as they are.
REASONS = {
    "missing-email": "no email address in the row",
    "invalid-email": "not a valid email address",
    "source-too-long": f"the source is longer than {SOURCE_MAX} characters",
    "unterminated-quote": "a quote (\") opens in this row and is never closed",
    "duplicate": "the same address as an earlier row (counted once, there)",
    "suppressed": "on the suppression list (kept suppressed, not imported)",
    "already-confirmed": "already a confirmed subscriber (left as is)",
    "unsubscribed": "unsubscribed earlier; an import never resubscribes anyone",
    "confirmation-recent": "already pending and sent a confirmation recently; none sent now",
    "not-queued": "pending, but the confirmation could not be queued (run the import again)",
}
REJECTED = ("missing-email", "invalid-email", "source-too-long", "unterminated-quote")


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
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def summary_lines(self) -> list[str]:
        would = "would be " if self.dry_run else ""
        status = "confirmed" if self.consent == DOCUMENTED else "pending"
        lines = [
            f"{self.rows} row(s) read in {self.seconds:.1f}s"
            + (" (dry run: nothing was changed)" if self.dry_run else "") + ".",
            f"{self.created} new subscriber(s) {would}added as {status}.",
        ]
        if self.consent == DOCUMENTED:
            lines.append(f"{self.confirmed} pending subscriber(s) {would}confirmed.")
            if self.welcome:
                lines.append(f"{self.welcomes} welcome email(s) {would}queued.")
            else:
                lines.append("0 welcome emails: none was asked for, so nobody is mailed.")
        else:
            lines.append(f"{self.resent} pending subscriber(s) {would}sent a fresh confirmation.")
            lines.append(f"{self.queued} confirmation email(s) {would}queued.")
        lines.append(
            f"{self.rejected} row(s) rejected, {self.duplicates} repeated an earlier row, "
            f"{self.left} left as they are" + (", by reason:" if self.reasons else ".")
        )
        for reason in REASONS:
            if self.reasons[reason]:
                lines.append(f"  {self.reasons[reason]:>7} {reason}: {REASONS[reason]}")
        return lines


# -- reading the file --------------------------------------------------------------------


def check_file(binary: BinaryIO) -> int:
    """The file's lines after the header, for a progress bar; leaves the file where it was.

    Raises ImportFileError naming the first line that is not UTF-8 text.
    """
    try:
        return csvin.data_lines(binary)
    except csvin.CsvFileError as exc:
        raise ImportFileError(f"{exc}; nothing was imported") from exc


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`email=E-mail Address` pairs (from --map) into {"email": "E-mail Address"}."""
    mapping: dict[str, str] = {}
    for item in items:
        name, sep, header = item.partition("=")
        name = name.strip().lower()
        if not sep or not header.strip():
            raise ImportFileError(f"a mapping is FIELD=HEADER, like email=E-mail Address; got {item!r}")
        if name not in FIELDS:
            raise ImportFileError(f"unknown field {name!r} in a mapping; the fields are {', '.join(FIELDS)}")
        mapping[name] = header.strip()
    return mapping


def resolve_columns(header: list[str], mapping: dict[str, str] | None = None) -> dict[str, int]:
    """Which column holds each field: the mapping's header, else a recognised name."""
    mapping = mapping or {}
    cleaned = [h.strip() for h in header]
    columns: dict[str, int] = {}
    for name in FIELDS:
        if name in mapping:
            wanted = mapping[name].lower()
            matches = [i for i, h in enumerate(cleaned) if h.lower() == wanted]
            if not matches:
                raise ImportFileError(
                    f"the mapping names a column {mapping[name]!r} for {name}, but the header row "
                    f"has no such column (it has: {_listing(cleaned)})"
                )
            columns[name] = matches[0]
            continue
        for i, h in enumerate(cleaned):
            if _key(h) in HEADER_ALIASES[name]:
                columns[name] = i
                break
    if "email" not in columns:
        raise ImportFileError(
            "the header row names no email column (it has: "
            f"{_listing(cleaned)}); name one 'email', or say which it is: --map \"email=YOUR HEADER\" "
            "on the command line, the Email column box on the staff page"
        )
    return columns


def _listing(headers: list[str]) -> str:
    shown = ", ".join(repr(h) for h in headers[:12] if h) or "nothing"
    return shown + (", …" if len(headers) > 12 else "")


# -- the import --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    line: int
    raw: str
    email: str
    source: str | None


@dataclass
class _ChunkResult:
    created: int = 0
    confirmed: int = 0
    resent: int = 0
    problems: list[Problem] = field(default_factory=list)
    to_mail: list[int] = field(default_factory=list)
    to_welcome: list[int] = field(default_factory=list)


def import_csv(
    stream: BinaryIO | TextIO,
    *,
    consent: str,
    source: str | None = None,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    consent_text_version: str | None = None,
    chunk_size: int = CHUNK_SIZE,
    progress: Callable[[int], None] | None = None,
    welcome: bool = False,
) -> ImportReport:
    """Import subscribers from a CSV file (binary, or text); see the module docstring for the modes.

    The whole file is read first (alerts.csvin): one that cannot be read is refused with
    ImportFileError naming the line, before any row is applied.

    `progress` is called with the number of file lines consumed since its last call.
    Each chunk is committed on its own (a dry run commits nothing), and confirmation
    (or, with `welcome`, welcome) emails for a chunk are queued only after its commit.
    """
    if consent not in CONSENT_MODES:
        raise ValueError(f"consent must be one of {CONSENT_MODES}")
    if welcome and consent != DOCUMENTED:
        raise ImportFileError(
            "the welcome email is for a documented-consent import; people who confirm first "
            "are welcomed when they confirm"
        )
    source = (source or "").strip() or None
    if consent == DOCUMENTED and not source:
        raise ImportFileError(
            "a documented-consent import needs a source: where and how the consent was given"
        )
    if source and len(source) > SOURCE_MAX:
        raise ImportFileError(f"the source is longer than {SOURCE_MAX} characters")
    started = time.perf_counter()
    report = ImportReport(consent=consent, dry_run=dry_run, welcome=welcome)
    try:
        table = csvin.open_table(stream, key_of=lambda header: resolve_columns(header, mapping)["email"])
    except csvin.CsvFileError as exc:
        raise ImportFileError(f"{exc}; nothing was imported") from exc
    version = consent_text_version or current_app.config["CONSENT_TEXT_VERSION"]
    header = table.header
    report.delimiter = table.delimiter
    columns = resolve_columns(header, mapping)
    report.columns = {name: header[i].strip() for name, i in columns.items()}
    email_at, source_at = columns["email"], columns.get("source")

    seen: dict[str, int] = {}
    chunk: list[_Row] = []
    applier = _Applier(consent, version, dry_run, report)
    last = reported_line = 1  # progress counts the lines after the header
    for found in table.records():
        line, last, record = found.line, max(last, found.end), found.cells
        if progress is not None and last - reported_line >= 1000:
            progress(last - reported_line)
            reported_line = last
        report.rows += 1
        if found.unclosed:
            cell = record[email_at] if email_at < len(record) else ""
            shown = cell.split("\n", 1)[0].strip() or found.text.strip()  # the row as it stands
            detail = (f"lines {line}–{found.end} were read as one row; they are read again on their own"
                      if found.end > line else "it runs to the end of the file")
            report.add(Problem(line, shown[:254], "unterminated-quote", detail))
            continue
        raw = record[email_at].strip() if email_at < len(record) else ""
        if not raw:
            report.add(Problem(line, "", "missing-email"))
            continue
        try:
            email = normalize_email(raw)
        except InvalidEmail as exc:
            report.add(Problem(line, raw, "invalid-email", str(exc)))
            continue
        row_source = source
        if source_at is not None and source_at < len(record) and record[source_at].strip():
            row_source = " ".join(record[source_at].split())  # a quoted source may span lines
            if len(row_source) > SOURCE_MAX:
                report.add(Problem(line, raw, "source-too-long"))
                continue
        first = seen.get(email_key(email))
        if first is not None:
            report.add(Problem(line, raw, "duplicate", f"line {first}"))
            continue
        seen[email_key(email)] = line
        chunk.append(_Row(line, raw, email, row_source))
        if len(chunk) >= chunk_size:
            applier.apply(chunk)
            chunk = []
    if chunk:
        applier.apply(chunk)
    if progress is not None and last > reported_line:
        progress(last - reported_line)
    report.problems.sort(key=lambda p: p.line)
    report.seconds = time.perf_counter() - started
    log.info(
        "subscriber import: %s rows, %s created, %s confirmed, %s resent, %s queued, %s welcomes, %s",
        report.rows, report.created, report.confirmed, report.resent, report.queued,
        report.welcomes, dict(report.reasons),
        extra={"import_mode": consent, "dry_run": dry_run},
    )
    return report


def import_file(binary: BinaryIO, **options) -> ImportReport:
    """`import_csv` for an uploaded or opened binary file."""
    return import_csv(binary, **options)


class _Applier:
    """Applies one chunk of checked, unique rows in one transaction."""

    def __init__(self, consent: str, version: str, dry_run: bool, report: ImportReport):
        self.consent = consent
        self.version = version
        self.dry_run = dry_run
        self.report = report
        self.welcome = report.welcome
        self.queue_broken = False

    def apply(self, rows: list[_Row]) -> None:
        for attempt in range(3):
            try:
                result = self._apply(rows)
                if self.dry_run:
                    db.session.rollback()
                else:
                    db.session.commit()
                break
            except IntegrityError:
                # A signup for one of these addresses landed between our SELECT and INSERT:
                # start the chunk again, which now finds that subscriber.
                db.session.rollback()
                if attempt == 2:
                    raise
        self.report.created += result.created
        self.report.confirmed += result.confirmed
        self.report.resent += result.resent
        for problem in result.problems:
            self.report.add(problem)
        if result.to_mail:
            self._enqueue(result.to_mail, {email_key(r.email): r for r in rows})
        if self.welcome:
            self.report.welcomes += result.created + result.confirmed
        if result.to_welcome:
            self._enqueue_welcomes(result.to_welcome)

    def _apply(self, rows: list[_Row]) -> _ChunkResult:
        result = _ChunkResult()
        now = utcnow()
        emails = [r.email for r in rows]
        suppressed = set(
            db.session.scalars(
                sa.select(Suppression.email_hash).where(
                    _in(Suppression.email_hash, [email_hash(e) for e in emails])
                )
            )
        )
        query = sa.select(
            Subscriber.id, Subscriber.email_key, Subscriber.status, Subscriber.last_confirmation_at
        ).where(_in(Subscriber.email_key, [email_key(e) for e in emails]))
        if not self.dry_run:
            query = query.with_for_update()  # PostgreSQL: no unsubscribe slips in between
        existing = {row.email_key: row for row in db.session.execute(query)}

        new: list[_Row] = []
        pending: list[tuple[_Row, int]] = []
        for row in rows:
            if email_hash(row.email) in suppressed:
                result.problems.append(Problem(row.line, row.raw, "suppressed"))
                continue
            known = existing.get(email_key(row.email))
            if known is None:
                new.append(row)
            elif known.status == SubscriberStatus.CONFIRMED:
                result.problems.append(Problem(row.line, row.raw, "already-confirmed"))
            elif known.status == SubscriberStatus.UNSUBSCRIBED:
                result.problems.append(Problem(row.line, row.raw, "unsubscribed"))
            else:
                pending.append((row, known.id))

        if self.consent == DOCUMENTED:
            self._documented(new, pending, now, result)
        else:
            self._confirm_first(new, pending, existing, now, result)
        return result

    def _documented(self, new, pending, now: datetime, result: _ChunkResult) -> None:
        result.created = len(new)
        result.confirmed = len(pending)
        if self.dry_run:
            return
        # Their welcome is settled at once unless the importer asked for it: `welcomed_for`
        # set to this confirmation takes them out of the sweep that sends lost welcomes.
        settled = None if self.welcome else now
        ids = self._insert(new, now, status=SubscriberStatus.CONFIRMED, confirmed_at=now,
                           welcomed_for=settled)
        if pending:
            # Confirmed now, on the documented consent; a source set before is kept.
            db.session.execute(
                sa.update(Subscriber.__table__)
                .where(Subscriber.__table__.c.id == sa.bindparam("b_id"))
                .values(status=SubscriberStatus.CONFIRMED.value, confirmed_at=now, confirm_nonce=None,
                        welcomed_for=settled,
                        source=sa.func.coalesce(Subscriber.__table__.c.source, sa.bindparam("b_source"))),
                [{"b_id": sub_id, "b_source": row.source} for row, sub_id in pending],
            )
        if self.welcome:
            result.to_welcome = [*ids, *(sub_id for _, sub_id in pending)]
        consents = [(sub_id, row.source) for row, sub_id in zip(new, ids, strict=True)]
        consents += [(sub_id, row.source) for row, sub_id in pending]
        self._consent_records(consents, "import:documented", now)

    def _confirm_first(self, new, pending, existing, now: datetime, result: _ChunkResult) -> None:
        cutoff = now - timedelta(seconds=current_app.config["CONFIRM_COOLDOWN_SECONDS"])
        result.created = len(new)
        if self.dry_run:
            for row, _ in pending:
                last = existing[email_key(row.email)].last_confirmation_at
                if last is None or last < cutoff:
                    result.resent += 1
                else:
                    result.problems.append(Problem(row.line, row.raw, "confirmation-recent"))
            return
        # New rows take their cooldown slot as they are written.
        ids = self._insert(new, now, status=SubscriberStatus.PENDING, nonce=True, last_confirmation_at=now)
        result.to_mail.extend(ids)
        claimed: set[int] = set()
        if pending:
            table = Subscriber.__table__
            claimed = set(
                db.session.scalars(
                    sa.update(table)
                    .where(_in(table.c.id, [sub_id for _, sub_id in pending]),
                           sa.or_(table.c.last_confirmation_at.is_(None),
                                  table.c.last_confirmation_at < cutoff))
                    .values(last_confirmation_at=now)
                    .returning(table.c.id)
                )
            )
        consents = [(sub_id, row.source) for row, sub_id in zip(new, ids, strict=True)]
        for row, sub_id in pending:
            if sub_id in claimed:
                result.resent += 1
                result.to_mail.append(sub_id)
                consents.append((sub_id, row.source))
            else:  # left as it is: no email, nothing recorded
                result.problems.append(Problem(row.line, row.raw, "confirmation-recent"))
        self._consent_records(consents, "import:confirm-first", now)

    def _insert(self, rows: list[_Row], now: datetime, *, status: SubscriberStatus,
                confirmed_at: datetime | None = None, nonce: bool = False,
                last_confirmation_at: datetime | None = None,
                welcomed_for: datetime | None = None) -> list[int]:
        """One executemany INSERT, then the new ids by address, in the rows' order.

        (INSERT … RETURNING of a thousand rows is one statement with thousands of
        parameters, which psycopg parses anew each time: three times slower here.)
        """
        if not rows:
            return []
        params = [
            {
                "email": row.email,
                "email_key": email_key(row.email),
                "token_key": new_token_key(),
                "status": status.value,
                "created_at": now,
                "confirmed_at": confirmed_at,
                # A fresh nonce per pending subscriber makes each confirmation link single-use.
                "confirm_nonce": secrets.token_hex(16) if nonce else None,
                "last_confirmation_at": last_confirmation_at,
                "welcomed_for": welcomed_for,
                "source": row.source,
            }
            for row in rows
        ]
        table = Subscriber.__table__
        db.session.execute(sa.insert(table), params)
        keys = [email_key(row.email) for row in rows]
        query = sa.select(table.c.email_key, table.c.id).where(_in(table.c.email_key, keys))
        ids = dict(db.session.execute(query).all())
        return [ids[key] for key in keys]

    def _consent_records(self, consents: list[tuple[int, str | None]], event: str, now: datetime) -> None:
        if not consents:
            return
        db.session.execute(
            sa.insert(ConsentRecord.__table__),
            [
                {"subscriber_id": sub_id, "event": event, "at": now, "ip": None, "user_agent": None,
                 "consent_text_version": self.version, "source": src}
                for sub_id, src in consents
            ],
        )

    def _enqueue(self, ids: list[int], rows_by_email: dict[str, _Row]) -> None:
        """After the chunk's commit: its confirmations, as one fan-out task.

        A worker turns it into a send_confirmation task per subscriber: publishing 100,000
        tasks from here would take the import a minute and a half. If the broker is away,
        the cooldown slots taken for these subscribers are freed, so that running the
        import again (or a signup) sends the confirmation.
        """
        if not self.queue_broken and queueing.publish(QUEUE_CONFIRMATIONS, ids):
            self.report.queued += len(ids)
            return
        self.queue_broken = True
        release_cooldown(ids)
        query = sa.select(Subscriber.id, Subscriber.email_key).where(_in(Subscriber.id, ids))
        emails = dict(db.session.execute(query).all())
        db.session.rollback()
        for sub_id in ids:
            row = rows_by_email.get(emails.get(sub_id) or "")
            if row is not None:
                self.report.add(Problem(row.line, row.raw, "not-queued"))


    def _enqueue_welcomes(self, ids: list[int]) -> None:
        """After the chunk's commit: the welcomes asked for, as one fan-out task. If the broker
        is away they are not lost: the sweep sends welcomes not yet sent within the hour."""
        if not queueing.publish(QUEUE_EMAILS, WELCOME, ids):
            log.warning("import: %s welcome email(s) left for the sweep (the broker is away)", len(ids),
                        extra={"welcomes": len(ids)})


def _in(column, values: list) -> sa.ColumnElement[bool]:
    """`column IN (…)`; on PostgreSQL `column = ANY(:array)`, one parameter instead of thousands."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.literal(list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def write_problems(problems: Iterable[Problem], out: TextIO) -> None:
    """The report of rows not imported as they stand: line, email, reason, detail."""
    writer = csvout.Writer(out)
    writer.writerow(["line", "email", "reason", "detail"])
    writer.writerows([p.line, p.email, p.reason, p.text] for p in problems)
