"""Cutting a blast's queued rows into id ranges, one batch task each."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from flask import current_app

from .. import queueing
from ..extensions import db
from ..models import Alert, AlertState, Delivery, DeliveryStatus, utcnow
from .state import finish_if_done

SEND_BATCH = "alerts.tasks.send_batch"


def batch_ranges(alert_id: int, size: int) -> Iterator[tuple[int, int]]:
    """(first id, last id) of each run of `size` queued rows, streamed from the database."""
    ids = db.session.scalars(
        sa.select(Delivery.id)
        .where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
        .execution_options(yield_per=10_000)
    )
    first = last = None
    n = 0
    for delivery_id in ids:
        if first is None:
            first = delivery_id
        last = delivery_id
        n += 1
        if n == size:
            yield first, last
            first, n = None, 0
    if first is not None:
        yield first, last


def dispatch(alert_id: int) -> int:
    """Queue one batch task per range of queued rows; returns how many were queued.

    Engine internal: commits (the dispatch time, which the sweep reads), and the batch
    tasks go out after that commit.
    """
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.state != AlertState.SENDING:
        db.session.rollback()
        return 0
    ranges = list(batch_ranges(alert_id, current_app.config["BLAST_BATCH_SIZE"]))
    alert.last_dispatch_at = utcnow()
    for first, last in ranges:
        queueing.after_commit(SEND_BATCH, alert_id, first, last)
    db.session.commit()
    if not ranges:
        finish_if_done(alert_id)
    return len(ranges)
