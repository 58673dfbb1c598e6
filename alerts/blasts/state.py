"""An alert's state and the moves between them; the one place a blast's recipients are chosen.

draft -> sending -> sent; sending <-> paused; draft, sending or paused -> cancelled.
Nothing here commits: the caller does (and `control` queues the dispatch after it).
"""
from __future__ import annotations

from typing import cast

import sqlalchemy as sa
from flask import current_app

from .. import audiences, webhooks
from ..extensions import db, upsert
from ..models import AbTest, Alert, AlertState, Delivery, DeliveryStatus, Subscriber, utcnow
from ..tracking import links
from ..webhooks import outbox
from .content import frozen_links

# The states whose queued rows the batches send: a blast being sent, and a journey step's
# standing alert (its rows are queued as people reach the step; it never finishes).
RUNNING = (AlertState.SENDING, AlertState.JOURNEY)


class BlastError(Exception):
    """A request the alert's state does not allow; the message says why."""


def locked_alert(alert_id: int) -> Alert:
    alert = db.session.get(Alert, alert_id, with_for_update=True, populate_existing=True)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    return alert


def _recipients(query: sa.Select, alert: Alert | None = None) -> sa.Select:
    """Who a blast goes to at the moment it starts: confirmed, not suppressed, not pausing, and
    matching the alert's audience rules (alerts/audiences), all as WHERE clauses of one statement."""
    rules = audiences.parse(alert.audience if alert is not None else None)
    return query.where(*audiences.conditions(rules, audiences.linked_action_ids(alert)))


def recipient_count(alert: Alert | None = None, *, through: int | None = None) -> int:
    """How many a blast started now would go to (the staff confirmation page shows it)."""
    query = _recipients(sa.select(sa.func.count()).select_from(Subscriber), alert)
    if through is not None:
        query = query.where(Subscriber.id <= through)
    return db.session.scalar(query)


def filling(alert: Alert) -> bool:
    """True while some of the blast's recipients have no delivery row yet."""
    return alert.fill_through is not None and (alert.fill_after or 0) < alert.fill_through


def _still_filling() -> sa.ColumnElement[bool]:
    """`filling` as SQL, for the statement that ends a blast."""
    return sa.and_(Alert.fill_through.is_not(None),
                   sa.func.coalesce(Alert.fill_after, 0) < Alert.fill_through)


def fix_next_chunk(alert: Alert, size: int | None = None) -> None:
    """Give the next `size` subscribers (by id, up to fill_through) who are recipients their rows.

    The rows and the cursor move in one transaction, and a row is unique per (alert,
    subscriber), so a chunk fixed twice (two fill tasks racing) adds nothing the second time.
    Who qualifies is decided when the chunk is fixed: someone who left the list meanwhile gets
    nothing, and nobody who joined after the send began (a higher id) is added.
    """
    after = alert.fill_after or 0
    upto = alert.fill_through
    if size is not None:
        nth = db.session.scalar(
            sa.select(Subscriber.id).where(Subscriber.id > after, Subscriber.id <= upto)
            .order_by(Subscriber.id).offset(size - 1).limit(1))
        upto = nth if nth is not None else upto
    recipients = _recipients(
        sa.select(sa.literal(alert.id), Subscriber.id, sa.literal(str(DeliveryStatus.QUEUED)), sa.literal(0))
        .where(Subscriber.id > after, Subscriber.id <= upto),
        alert,
    ).order_by(Subscriber.id)
    db.session.execute(
        upsert(Delivery)
        .from_select(["alert_id", "subscriber_id", "status", "attempts"], recipients)
        .on_conflict_do_nothing(index_elements=["alert_id", "subscriber_id"])
    )
    alert.fill_after = upto


def expected_recipients(alert: Alert) -> int:
    """How many a started blast goes to: exact once every chunk is fixed, else counted once (up
    to fill_through) and kept. Counting a million-person audience takes a second or more, so
    it is done after the send's commit (the fill task, the page that reports it), never before.
    Caller commits."""
    if alert.recipients_expected is None:
        alert.recipients_expected = recipient_count(alert, through=alert.fill_through)
    return alert.recipients_expected


def start_blast(alert_id: int) -> int | None:
    """Mark the alert sending and fix its first recipients; returns how many it goes to, or None
    while that is not known yet (a large list; see `expected_recipients`).

    A list larger than a tenth of BLAST_FILL_CHUNK gets that much here (the first batches'
    worth, quick to write) and the rest from the fill task, a chunk at a time, while the
    first batches go out; an A/B test draws its samples from everyone, so its recipients are
    all fixed here.
    """
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a draft can be sent")
    try:
        audiences.conditions(audiences.parse(alert.audience), audiences.linked_action_ids(alert))
    except audiences.AudienceError as exc:
        raise BlastError(f"alert {alert_id}'s audience: {exc}") from exc
    alert.fill_after = 0
    alert.fill_through = db.session.scalar(sa.select(sa.func.max(Subscriber.id))) or 0
    whole = db.session.get(AbTest, alert_id) is not None
    fix_next_chunk(alert, None if whole else max(1, current_app.config["BLAST_FILL_CHUNK"] // 10))
    alert.state = AlertState.SENDING
    alert.started_at = utcnow()
    # The links /r/ may lead to for this alert, fixed now (its actions can be edited later).
    links.freeze(alert_id, frozen_links(alert))
    if filling(alert):
        return None
    # (rowcount of an INSERT … SELECT is -1 on some drivers: count what was written)
    alert.recipients_expected = db.session.scalar(
        sa.select(sa.func.count()).where(Delivery.alert_id == alert_id))
    return alert.recipients_expected


def _move(alert_id: int, allowed: tuple[str, ...], to: str, verb: str) -> Alert:
    alert = locked_alert(alert_id)
    if alert.state not in allowed:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a {' or '.join(allowed)} alert "
                         f"can be {verb}")
    alert.state = to
    return alert


def pause(alert_id: int) -> None:
    _move(alert_id, (AlertState.SENDING,), AlertState.PAUSED, "paused")


def resume(alert_id: int) -> None:
    _move(alert_id, (AlertState.PAUSED,), AlertState.SENDING, "resumed")


def cancel(alert_id: int) -> None:
    """Rows not yet sent are skipped; a batch in flight stops at its next check."""
    alert = _move(alert_id, (AlertState.SENDING, AlertState.PAUSED, AlertState.DRAFT),
                  AlertState.CANCELLED, "cancelled")
    alert.finished_at = utcnow()
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.alert_id == alert_id,
               Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.HELD]))
        .values(status=DeliveryStatus.SKIPPED, error="cancelled")
    )


def finish_if_done(alert_id: int) -> bool:
    """Mark the alert sent once no row is queued or being sent (one conditional UPDATE).

    Engine internal: commits, so that a worker finishing the last batch ends the blast.
    """
    busy = sa.exists().where(
        Delivery.alert_id == alert_id,
        # held: an A/B test's rest, waiting for the winner
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING, DeliveryStatus.HELD]),
    )
    res = db.session.execute(
        sa.update(Alert)
        .where(Alert.id == alert_id, Alert.state == AlertState.SENDING, ~busy, ~_still_filling())
        .values(state=AlertState.SENT, finished_at=utcnow())
    )
    finished = cast(sa.CursorResult, res).rowcount == 1
    if finished:  # in the same commit: the event is recorded with the state it reports
        alert = db.session.get_one(Alert, alert_id)
        counts: dict[str, int] = {status: n for status, n in db.session.execute(
            sa.select(Delivery.status, sa.func.count()).where(Delivery.alert_id == alert_id)
            .group_by(Delivery.status)
        )}
        outbox.emit(webhooks.ALERT_SENT, {
            "id": alert.id, "subject": alert.subject, "started_at": alert.started_at,
            "finished_at": alert.finished_at, "sent": counts.get(DeliveryStatus.SENT, 0),
            "failed": counts.get(DeliveryStatus.FAILED, 0), "skipped": counts.get(DeliveryStatus.SKIPPED, 0),
        })
    db.session.commit()
    return finished
