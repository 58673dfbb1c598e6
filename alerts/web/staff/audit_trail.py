"""The audit trail's staff page and its CSV: who changed what, when and from where."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta

from flask import Response, render_template, request, stream_with_context

from ... import audit
from ...csvout import Writer
from ...extensions import db
from ...models import AuditEvent
from ..filters import org_zone
from ..security import records_on_get
from .common import PER_PAGE, page_number, record_export

CSV_CHUNK = 500


def _day(name: str, *, end: bool = False) -> tuple[datetime | None, str | None]:
    """A YYYY-MM-DD query argument as the start (or the end) of that day in the organisation's zone."""
    raw = (request.args.get(name) or "").strip()
    if not raw:
        return None, None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return None, f"“{raw[:20]}” is not a date: write it as YYYY-MM-DD."
    start = datetime.combine(day, time.min, tzinfo=org_zone()).astimezone(UTC)
    return (start + timedelta(days=1) if end else start), None


def _filters() -> tuple[audit.Filters, dict[str, str], list[str]]:
    since, since_error = _day("since")
    until, until_error = _day("until", end=True)
    args = {name: " ".join((request.args.get(name) or "").split())[:200]
            for name in ("actor", "action", "target", "since", "until")}
    filters = audit.Filters(actor=args["actor"], action=args["action"], target=args["target"],
                            since=since, until=until)
    return filters, args, [e for e in (since_error, until_error) if e]


def audit_trail():
    filters, args, errors = _filters()
    pagination = db.paginate(filters.query(), page=page_number(), per_page=PER_PAGE, error_out=False)
    shown = {k: v for k, v in args.items() if v}
    return render_template("staff/audit.html", pagination=pagination, args=args, shown=shown,
                           errors=errors), 400 if errors else 200


@records_on_get  # the export itself goes on the trail
def audit_trail_csv():
    filters, args, errors = _filters()
    if errors:
        return Response(" ".join(errors) + "\n", status=400, mimetype="text/plain")
    record_export("audit.export", None, filters={k: v for k, v in args.items() if v})

    def rows() -> Iterator[str]:
        """Newest first, CSV_CHUNK rows a query (keyset on the id): no cursor is left open."""
        buffer = io.StringIO()
        out = Writer(buffer)
        out.writerow(audit.CSV_HEADER)
        query = filters.query().order_by(None).order_by(AuditEvent.id.desc()).limit(CSV_CHUNK)
        last: int | None = None
        while True:
            page = db.session.scalars(query if last is None else query.where(AuditEvent.id < last)).all()
            for event in page:
                out.writerow(audit.as_row(event))
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(page) < CSV_CHUNK:
                return
            last = page[-1].id

    name = f"audit-{datetime.now(UTC):%Y-%m-%d}.csv"
    return Response(stream_with_context(rows()), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
