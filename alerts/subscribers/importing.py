"""Subscriber import: plain functions behind `alerts subscribers …` and the staff pages.

An import reads a CSV file whose header row names at least the email column, checks every
row (a valid address, not a repeat of an earlier row, not suppressed, not unsubscribed; every
name, postal code, phone, language and custom field as the signup form checks it, a bad value
refusing the row) and applies the rest in chunks: one SELECT for the chunk's known addresses,
one for its suppressions, bulk INSERTs for the new subscribers, their fields' values and their
consent records, one UPDATE giving known subscribers the fields they had none of, one commit.
A column no field takes is named in the report, never dropped in silence.

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

This module reads and checks the rows; `import_columns` finds the fields in the header row,
`import_applier` applies each chunk, `import_report` holds the modes, reasons and report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import BinaryIO, TextIO

from flask import current_app

from .. import csvin
from ..models import email_key
from . import fields, people
from .import_applier import Applier, Row
from .import_columns import LABELS, PROFILE, resolve_columns
from .import_report import CONSENT_MODES, DOCUMENTED, SOURCE_MAX, ImportFileError, ImportReport, Problem
from .subscriptions import InvalidEmail, normalize_email

log = logging.getLogger(__name__)

CHUNK_SIZE = 2000


def check_file(binary: BinaryIO) -> int:
    """The file's lines after the header, for a progress bar; leaves the file where it was.

    Raises ImportFileError naming the first line that is not UTF-8 text.
    """
    try:
        return csvin.data_lines(binary)
    except csvin.CsvFileError as exc:
        raise ImportFileError(f"{exc}; nothing was imported") from exc


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
    defs = fields.custom()
    try:
        table = csvin.open_table(
            stream, key_of=lambda header: resolve_columns(header, mapping, defs)["email"])
    except csvin.CsvFileError as exc:
        raise ImportFileError(f"{exc}; nothing was imported") from exc
    version = consent_text_version or current_app.config["CONSENT_TEXT_VERSION"]
    header = table.header
    report.delimiter = table.delimiter
    columns = resolve_columns(header, mapping, defs)
    report.columns = {name: header[i].strip() for name, i in sorted(columns.at.items(), key=lambda c: c[1])}
    report.labels = {**LABELS, **{f.key: f.label for f in defs}}
    report.unmapped = [(i + 1, h) for i, h in columns.unmapped]
    email_at, source_at = columns["email"], columns.at.get("source")
    reader = _FieldReader({n: columns.at[n] for n in PROFILE if n in columns.at},
                          {k: columns.at[k] for k in columns.custom}, list(columns.custom.values()))

    seen: dict[str, int] = {}
    chunk: list[Row] = []
    applier = Applier(consent, version, dry_run, report, {f.key: f.id for f in columns.custom.values()},
                      profile=columns.at)
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
        try:
            profile, values = reader.read(record)
        except fields.FieldError as exc:
            report.add(Problem(line, raw, "invalid-field", "; ".join(exc.errors.values())))
            continue
        first = seen.get(email_key(email))
        if first is not None:
            report.add(Problem(line, raw, "duplicate", f"line {first}"))
            continue
        seen[email_key(email)] = line
        chunk.append(Row(line, raw, email, row_source, profile, values))
        if len(chunk) >= chunk_size:
            applier.apply(chunk)
            chunk = []
    if chunk:
        applier.apply(chunk)
    if progress is not None and last > reported_line:
        progress(last - reported_line)
    report.problems.sort(key=lambda p: p.line)
    if not dry_run:
        report.email_keys = list(seen)
    report.seconds = time.perf_counter() - started
    log.info(
        "subscriber import: %s rows, %s created, %s confirmed, %s resent, %s queued, %s welcomes, %s",
        report.rows, report.created, report.confirmed, report.resent, report.queued,
        report.welcomes, dict(report.reasons),
        extra={"import_mode": consent, "dry_run": dry_run},
    )
    return report


class _FieldReader:
    """A row's profile and custom fields, checked as every other way in checks them."""

    def __init__(self, profile_at: dict[str, int], custom_at: dict[str, int],
                 defs: list[fields.FieldDef]) -> None:
        self.profile_at, self.custom_at, self.defs = profile_at, custom_at, defs

    def read(self, record: list[str]) -> tuple[dict[str, str], dict[str, list[str]]]:
        """The values given (an empty cell gives nothing); FieldError says, in words, what is wrong."""
        errors: dict[str, str] = {}
        profile: dict[str, str] = {}
        values: dict[str, list[str]] = {}
        given: dict[str, object] = {
            n: record[i] for n, i in self.profile_at.items() if i < len(record) and record[i].strip()}
        if given:
            try:
                profile = {k: v for k, v in people.clean_profile(given).items() if v is not None}
            except people.ProfileError as exc:
                errors.update({k: _said(LABELS[k], m) for k, m in exc.errors.items()})
        raw = {k: record[i] for k, i in self.custom_at.items() if i < len(record) and record[i].strip()}
        if raw:
            try:
                values = {k: v for k, v in fields.clean_values(raw, self.defs).items() if v}
            except fields.FieldError as exc:
                errors.update(exc.errors)
        if errors:
            raise fields.FieldError(errors)
        return profile, values


def _said(label: str, message: str) -> str:
    return f"{label} {message}" if message.startswith("is ") else f"{label}: {message}"


def import_file(binary: BinaryIO, **options) -> ImportReport:
    """`import_csv` for an uploaded or opened binary file."""
    return import_csv(binary, **options)
