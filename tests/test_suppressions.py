"""The suppression list's one writer: idempotent, first reason stands, never raises on a race."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts import suppressions
from alerts.extensions import db
from alerts.models import Delivery, Suppression, email_hash, utcnow
from tests.helpers import add_confirmed, blasts, make_alert


def test_add_is_idempotent_and_the_first_reason_stands(app, ctx):
    assert suppressions.add("Someone@Example.org", "hard-bounce", "550 5.1.1") is True
    assert suppressions.add("someone@example.org", "complaint", "ARF") is False
    db.session.commit()
    [row] = db.session.scalars(sa.select(Suppression)).all()
    assert (row.reason, row.email_hash) == ("hard-bounce", email_hash("someone@example.org"))
    assert suppressions.is_suppressed("SOMEONE@example.org")
    assert suppressions.suppressed_hashes(["someone@example.org", "other@example.org"]) == {row.email_hash}


def test_detail_is_capped(app, ctx):
    suppressions.add("long@example.org", "manual", "x" * 10_000)
    db.session.commit()
    assert len(db.session.scalar(sa.select(Suppression.detail))) == suppressions.MAX_DETAIL


@pytest.mark.commits
def test_a_racing_writer_does_not_undo_a_batch_flush(app, ctx, smtp):
    """A bounce report suppresses the address that the recorder's flush is suppressing for a
    550 at RCPT, between the flush's check and its insert. Before one race-safe writer, the
    flush raised and rolled back: rows the relay had accepted stayed `sending`, the sweep
    returned them, and they were sent twice."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time: the race needs PostgreSQL (CI runs both)")
    emails = add_confirmed(5, prefix="race")
    bad = emails[2]
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    smtp.handler.rcpt_reply = lambda a: "550 5.1.1 no such user" if a == bad else None
    other = sa.create_engine(db.engine.url)
    raced = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO SUPPRESSIONS") and not raced:
            raced.append(True)
            with other.begin() as c:  # the other writer commits first
                c.execute(sa.insert(Suppression).values(
                    email_hash=email_hash(bad), email=bad, reason="hard-bounce",
                    detail="from a bounce report", created_at=utcnow()))

    sa.event.listen(db.engine, "before_cursor_execute", before)
    try:
        first, last = next(blasts.batch_ranges(alert_id, 500))
        result = blasts.send_batch(alert_id, first, last)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", before)
        other.dispose()
    assert raced == [True]
    db.session.rollback()
    statuses = dict(db.session.execute(
        sa.select(Delivery.status, sa.func.count()).where(Delivery.alert_id == alert_id)
        .group_by(Delivery.status)).all())
    assert statuses == {"sent": 4, "failed": 1}
    assert (result.sent, result.failed, result.stopped) == (4, 1, None)
    [row] = db.session.scalars(sa.select(Suppression)).all()
    assert row.detail == "from a bounce report"  # the first writer's reason stands
    assert sorted(r for m in smtp.messages for r in m.rcpt_tos) == sorted(set(emails) - {bad})
