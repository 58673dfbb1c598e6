"""Subscriber export: CSV streamed in chunks, every cell neutralised against formula injection."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa

from .. import csvout
from ..extensions import db
from ..models import Subscriber, SubscriberStatus
from . import fields

# Then each custom field, headed by its key (what an import maps back to the field).
EXPORT_COLUMNS = ("email", "status", "first_name", "last_name", "postal_code", "language", "source",
                  "created_at", "confirmed_at", "unsubscribed_at", "phone")
EXPORT_CHUNK = 1000


def columns() -> list[str]:
    """The export's header row: the built-in columns, then each custom field's key."""
    return [*EXPORT_COLUMNS, *(f.key for f in fields.custom())]


def export_csv(status: str | None = None, *, chunk_size: int = EXPORT_CHUNK) -> Iterator[str]:
    """The subscribers as CSV text, a chunk of rows per piece, read with yield_per.

    On PostgreSQL that is a server-side cursor, so memory stays flat however long the
    list; every piece is a whole number of CSV lines.
    """
    if status is not None and status not in {s.value for s in SubscriberStatus}:
        raise ValueError(f"unknown status {status!r}")
    buf = io.StringIO()
    writer = csvout.Writer(buf, lineterminator="\r\n")
    custom = fields.custom()
    writer.writerow([*EXPORT_COLUMNS, *(f.key for f in custom)])
    yield csvout.drain(buf)
    query = sa.select(
        Subscriber.id, Subscriber.email, Subscriber.status, Subscriber.first_name, Subscriber.last_name,
        Subscriber.postal_code, Subscriber.language, Subscriber.source, Subscriber.created_at,
        Subscriber.confirmed_at, Subscriber.unsubscribed_at, Subscriber.phone,
    ).order_by(Subscriber.id)
    if status:
        query = query.where(Subscriber.status == status)
    result = db.session.execute(query.execution_options(yield_per=chunk_size))
    try:
        for partition in result.partitions():
            # One query per partition for its custom values, read while the cursor stays open.
            values = fields.values_for([row.id for row in partition]) if custom else {}
            writer.writerows(
                (row.email, row.status, row.first_name or "", row.last_name or "", row.postal_code or "",
                 row.language or "", row.source or "", _iso(row.created_at), _iso(row.confirmed_at),
                 _iso(row.unsubscribed_at), row.phone or "",
                 *(fields.shown(f, values.get(row.id, {}).get(f.key, [])) for f in custom))
                for row in partition
            )
            yield csvout.drain(buf)
    finally:
        result.close()
        db.session.rollback()  # end the read transaction the export held open



def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""
