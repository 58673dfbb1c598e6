"""An action's signatures as staff see them: search, counts by day and source, CSV out and in.

Every CSV goes through `alerts.csvout` (cells neutralised against formula injection). The
export is what gets delivered to the target: counted signatures only (a flagged one waits
for its confirmation), never an erased one. The import is for actions hosted elsewhere:
that tool's signers become signatures here (source `import`), so audiences and reports know
who acted.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, BinaryIO

import sqlalchemy as sa

from .. import csvin, csvout, webhooks
from ..extensions import db, upsert
from ..models import Action, Signature, Subscriber, utcnow
from ..subscribers import subscriptions
from ..webhooks import outbox
from .signing import COMMENT_MAX, ERASED, IMPORT, NAME_MAX, POSTAL_MAX, email_key, signature_event

EXPORT_COLUMNS = ("name", "email", "postal_code", "comment", "signed_at", "source", "alert_id", "source_code")
EXPORT_CHUNK = 1000
IMPORT_CHUNK = 1000

# Header names recognised, compared lower-cased with punctuation removed.
IMPORT_HEADERS = {
    "email": {"email", "emailaddress", "mail", "emails"},
    "name": {"name", "fullname", "signername", "yourname"},
    "first_name": {"firstname", "givenname", "first"},
    "last_name": {"lastname", "surname", "familyname", "last"},
    "postal_code": {"postalcode", "zip", "zipcode", "postcode"},
    "comment": {"comment", "comments", "message"},
    "signed_at": {"signedat", "date", "createdat", "timestamp", "signed", "datesigned"},
}


def visible(action_id: int) -> sa.ColumnElement[bool]:
    """Rows staff see: the action's signatures that were not erased."""
    return sa.and_(Signature.action_id == action_id, Signature.email != ERASED)


def search(action_id: int, q: str = "") -> sa.Select:
    """Newest first; `q` matches name or address, case-insensitively."""
    query = sa.select(Signature).where(visible(action_id)).order_by(
        Signature.created_at.desc(), Signature.id.desc())
    q = " ".join(q.split()).lower()
    if q:
        query = query.where(sa.or_(Signature.email_key.contains(q, autoescape=True),
                                   sa.func.lower(Signature.name).contains(q, autoescape=True)))
    return query


def _day_expression() -> sa.ColumnElement[Any]:
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.cast(sa.func.timezone("UTC", Signature.created_at), sa.Date)
    return sa.func.substr(Signature.created_at, 1, 10)  # SQLite keeps ISO text in UTC


def by_day(action_id: int) -> list[tuple[date, int]]:
    """Counted signatures per UTC day, oldest first."""
    day = _day_expression().label("day")
    rows = db.session.execute(
        sa.select(day, sa.func.count()).where(Signature.action_id == action_id,
                                              Signature.confirmed_at.is_not(None))
        .group_by(day).order_by(day)
    )
    return [(d if isinstance(d, date) else date.fromisoformat(d), n) for d, n in rows]


@dataclass(frozen=True)
class SourceCount:
    source: str
    counted: int
    flagged: int


def by_source(action_id: int) -> list[SourceCount]:
    """Signatures per source (alert, action-center, share, direct, import), counted and flagged."""
    counted = sa.func.count(Signature.confirmed_at)
    rows = db.session.execute(
        sa.select(Signature.source, counted, sa.func.count() - counted)
        .where(Signature.action_id == action_id).group_by(Signature.source).order_by(counted.desc())
    )
    return [SourceCount(s, c, f) for s, c, f in rows]


NO_CODE = "(no source code)"


def by_source_code(action_id: int) -> list[SourceCount]:
    """Signatures per `?source=` code (the partner, link or page they came through), counted and flagged."""
    counted = sa.func.count(Signature.confirmed_at)
    code = sa.func.coalesce(Signature.source_code, NO_CODE).label("code")
    rows = db.session.execute(
        sa.select(code, counted, sa.func.count() - counted)
        .where(Signature.action_id == action_id).group_by(code).order_by(counted.desc(), code)
    )
    return [SourceCount(s, c, f) for s, c, f in rows]


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _export_query(action_id: int) -> sa.Select:
    return (sa.select(Signature.name, Signature.email, Signature.postal_code, Signature.comment,
                      Signature.created_at, Signature.source, Signature.alert_id, Signature.source_code)
            .where(visible(action_id), Signature.confirmed_at.is_not(None)).order_by(Signature.id))


def export_rows(action_id: int) -> Iterator[dict]:
    """The counted signatures as dicts (the CLI's JSON)."""
    result = db.session.execute(_export_query(action_id).execution_options(yield_per=EXPORT_CHUNK))
    for name, email, postal, comment, created, source, alert_id, code in result:
        yield {"name": name, "email": email, "postal_code": postal, "comment": comment,
               "signed_at": _iso(created), "source": source, "alert_id": alert_id, "source_code": code}


def export_csv(action_id: int) -> Iterator[str]:
    """The counted signatures as CSV text, streamed a chunk of rows at a time."""
    buf = io.StringIO()
    writer = csvout.Writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield csvout.drain(buf)
    result = db.session.execute(_export_query(action_id).execution_options(yield_per=EXPORT_CHUNK))
    try:
        for partition in result.partitions():
            writer.writerows(
                (name, email, postal or "", comment or "", _iso(created), source, alert_id or "", code or "")
                for name, email, postal, comment, created, source, alert_id, code in partition
            )
            yield csvout.drain(buf)
    finally:
        result.close()



# -- import ---------------------------------------------------------------------------------


class SignerFileError(ValueError):
    """The file as a whole cannot be imported; nothing was."""


@dataclass
class SignerImport:
    added: int = 0
    already: int = 0  # signed here before (or repeated in the file)
    rejected: list[tuple[int, str, str]] = field(default_factory=list)  # (line, email, why)

    def summary(self) -> str:
        return f"{self.added} added, {self.already} already signed, {len(self.rejected)} rejected"


def _key(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def _columns(header: list[str]) -> dict[str, int]:
    columns: dict[str, int] = {}
    for i, h in enumerate(header):
        for name, aliases in IMPORT_HEADERS.items():
            if name not in columns and _key(h) in aliases:
                columns[name] = i
    if "email" not in columns:
        shown = ", ".join(repr(h) for h in header[:12] if h) or "nothing"
        raise SignerFileError(f"the header row names no email column (it has: {shown})")
    return columns


def _when(raw: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        return value.astimezone(UTC) if value.tzinfo else None
    except (ValueError, OverflowError):  # not a date, or one that leaves the calendar in UTC
        return None


def import_signers(action: Action, binary: BinaryIO) -> SignerImport:
    """Add another tool's signers as counted signatures of `action`; commits each chunk.

    Raises SignerFileError naming the line before writing anything when the file cannot be
    read (alerts.csvin: not UTF-8, a value over the limit...) or has no email column. A row
    is rejected for a missing or invalid address, or a quote left open; one already signed
    is counted as such and left as it is.
    """
    columns: dict[str, int] = {}

    def key_of(header: list[str]) -> int:
        nonlocal columns
        columns = _columns([h.strip() for h in header])
        return columns["email"]

    try:
        table = csvin.open_table(binary, key_of=key_of)
    except csvin.CsvFileError as exc:
        raise SignerFileError(str(exc)) from exc
    report = SignerImport()
    chunk: list[dict] = []
    for record in table.records():
        line, row = record.line, record.cells
        if record.unclosed:
            shown = record.text.strip()[:254]
            report.rejected.append((line, shown, "a quote (\") opens in this row and is never closed"
                                    + (f"; lines {line}–{record.end} are read again on their own"
                                       if record.end > line else "")))
            continue

        def cell(name: str, row: list[str] = row) -> str:
            i = columns.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        raw = cell("email")
        try:
            email = subscriptions.normalize_email(raw)
        except subscriptions.InvalidEmail:
            report.rejected.append((line, raw, "missing email" if not raw else "invalid email"))
            continue
        name = cell("name") or " ".join(p for p in (cell("first_name"), cell("last_name")) if p)
        postal = cell("postal_code")[:POSTAL_MAX] or None
        signed_at = _when(cell("signed_at")) or utcnow()
        chunk.append({"email": email, "email_key": email_key(email),
                      "name": " ".join(name.split())[:NAME_MAX], "postal_code": postal,
                      "comment": cell("comment")[:COMMENT_MAX] or None,
                      "created_at": signed_at, "confirmed_at": signed_at})
        if len(chunk) >= IMPORT_CHUNK:
            _apply(action, chunk, report)
            chunk = []
    if chunk:
        _apply(action, chunk, report)
    return report


def _apply(action: Action, chunk: list[dict], report: SignerImport) -> None:
    """One chunk: link known subscribers, insert what is new, commit."""
    unique: dict[str, dict] = {}
    for row in chunk:
        unique.setdefault(row["email_key"], row)
    report.already += len(chunk) - len(unique)
    keys = list(unique)
    known = dict(db.session.execute(
        sa.select(Subscriber.email_key, Subscriber.id).where(Subscriber.email_key.in_(keys))).all())
    values = [{**r, "action_id": action.id, "subscriber_id": known.get(r["email_key"]), "source": IMPORT}
              for r in unique.values()]
    # Parameters as a list (executemany, batched by SQLAlchemy's insertmanyvalues): one statement
    # compiled once, where `.values(rows)` compiled a thousand-row statement afresh per chunk.
    added = db.session.execute(
        upsert(Signature)
        .on_conflict_do_nothing(index_elements=["action_id", "email_key"])
        .returning(Signature.id, Signature.email_key),
        values,
    ).all()
    # Each new signature is a signature.created, written beside it in the chunk's transaction.
    outbox.emit_many(webhooks.SIGNATURE_CREATED, [
        signature_event(row.id, action, email=unique[row.email_key]["email"],
                        name=unique[row.email_key]["name"], postal_code=unique[row.email_key]["postal_code"],
                        comment=unique[row.email_key]["comment"], source=IMPORT, alert_id=None,
                        confirmed=True, created_at=unique[row.email_key]["created_at"])
        for row in added])
    report.added += len(added)
    report.already += len(unique) - len(added)
    db.session.commit()
