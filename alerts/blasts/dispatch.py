"""Cutting a blast's queued rows into id ranges, one batch task each; fixing the rest of a
large list's recipients a chunk at a time while the first batches go out."""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from flask import current_app

from .. import queueing, tasknames
from ..extensions import db
from ..models import Alert, AlertState, Delivery, DeliveryStatus, utcnow
from .state import RUNNING, expected_recipients, filling, finish_if_done, fix_next_chunk


def batch_ranges(alert_id: int, size: int, after: int = 0) -> Iterator[tuple[int, int]]:
    """(first id, last id) of each run of `size` queued rows past `after`, streamed from the database."""
    ids = db.session.scalars(
        sa.select(Delivery.id)
        .where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.QUEUED,
               Delivery.id > after)
        .order_by(Delivery.id)
        .execution_options(yield_per=10_000)
    )
    first: int | None = None
    last = 0
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


# Below this many rows a batch's fixed costs (its claim, queries, connection, task) outweigh
# what spreading it over more workers gains.
SMALLEST_BATCH = 50


def batch_size(queued: int, largest: int, at_least: int) -> int:
    """Rows per batch for `queued` rows: `largest` for a long list (each batch's fixed costs,
    about 15 ms of worker CPU, shared by more messages: bench 1.74x → 1.64x the RSA floor
    from 500 to 2,000), but cut into `at_least` batches where each still holds
    SMALLEST_BATCH, so that a short list goes out over several workers at once."""
    spread = -(-queued // max(1, at_least))
    return max(1, min(largest, max(SMALLEST_BATCH, spread)))


def _queue_batches(alert: Alert, after: int = 0) -> tuple[int, bool]:
    """A batch task for each run of queued rows past `after`, and the next fill while the list
    is still being fixed, all sent once the caller commits; returns (batches, still filling)."""
    cfg = current_app.config
    queued = db.session.execute(sa.select(sa.func.count()).where(
        Delivery.alert_id == alert.id, Delivery.status == DeliveryStatus.QUEUED, Delivery.id > after)
    ).scalar_one()
    size = batch_size(queued, cfg["BLAST_BATCH_SIZE"], cfg["BLAST_MIN_BATCHES"])
    ranges = list(batch_ranges(alert.id, size, after=after))
    alert.last_dispatch_at = utcnow()  # the sweep reads it
    for first, last in ranges:
        queueing.after_commit(tasknames.SEND_BATCH, alert.id, first, last)
    more = filling(alert)
    if more:
        # (Again after a pause or a lost task: harmless.)
        queueing.after_commit(tasknames.FILL_BLAST, alert.id)
    return len(ranges), more


def dispatch(alert_id: int) -> int:
    """Queue one batch task per range of queued rows; returns how many were queued.

    Engine internal: commits (the dispatch time, which the sweep reads), and the batch
    tasks go out after that commit.
    """
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.state not in RUNNING:
        db.session.rollback()
        return 0
    batches, more = _queue_batches(alert)
    db.session.commit()
    if not batches and not more:
        finish_if_done(alert_id)
    return batches


def fill(alert_id: int) -> int:
    """Fix the next chunk of recipients, queue their batches and the next fill; returns batches queued.

    Engine internal: commits. The alert row is locked, so fills that race (a re-dispatch
    beside a running chain) take chunks one after the other; a paused or cancelled blast
    stops filling until it is resumed.
    """
    alert = db.session.get(Alert, alert_id)
    if alert is not None and alert.state == AlertState.SENDING and alert.recipients_expected is None:
        # The first fill counts, once, while the first batches go out; before taking the row
        # lock, so that a pause or a racing fill waits for a chunk, not for a count of everyone.
        expected_recipients(alert)
        db.session.commit()
    alert = db.session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
    if alert is None or alert.state != AlertState.SENDING or not filling(alert):
        db.session.rollback()
        return 0
    newest = db.session.execute(
        sa.select(sa.func.coalesce(sa.func.max(Delivery.id), 0)).where(Delivery.alert_id == alert_id)
    ).scalar_one()
    fix_next_chunk(alert, current_app.config["BLAST_FILL_CHUNK"])
    batches, more = _queue_batches(alert, after=newest)
    db.session.commit()
    if not more:
        finish_if_done(alert_id)
    return batches
