"""An alert's state and the moves between them; the one place a blast's recipients are chosen.

draft -> sending -> sent; sending <-> paused; draft, sending or paused -> cancelled.
Nothing here commits: the caller does (and `control` queues the dispatch after it).
"""

from __future__ import annotations

import sqlalchemy as sa

from .. import audiences
from ..extensions import db
from ..models import Alert, AlertState, Delivery, DeliveryStatus, Subscriber, utcnow
from ..tracking import links
from .content import frozen_links


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


def recipient_count(alert: Alert | None = None) -> int:
    """How many a blast started now would go to (the staff confirmation page shows it)."""
    return db.session.scalar(_recipients(sa.select(sa.func.count()).select_from(Subscriber), alert))


def start_blast(alert_id: int) -> int:
    """Fix the recipients and mark the alert sending; returns how many there are."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a draft can be sent")
    try:
        recipients = _recipients(
            sa.select(
                sa.literal(alert_id), Subscriber.id, sa.literal(str(DeliveryStatus.QUEUED)), sa.literal(0)
            ),
            alert,
        ).order_by(Subscriber.id)
    except audiences.AudienceError as exc:
        raise BlastError(f"alert {alert_id}'s audience: {exc}") from exc
    db.session.execute(
        sa.insert(Delivery).from_select(["alert_id", "subscriber_id", "status", "attempts"], recipients)
    )
    alert.state = AlertState.SENDING
    alert.started_at = utcnow()
    # The links /r/ may lead to for this alert, fixed now (its actions can be edited later).
    links.freeze(alert_id, frozen_links(alert))
    # (rowcount of an INSERT … SELECT is -1 on some drivers: count what was written)
    return db.session.scalar(sa.select(sa.func.count()).where(Delivery.alert_id == alert_id))


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
        .where(Alert.id == alert_id, Alert.state == AlertState.SENDING, ~busy)
        .values(state=AlertState.SENT, finished_at=utcnow())
    )
    db.session.commit()
    return res.rowcount == 1
