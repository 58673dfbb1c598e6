"""The sweep: rows whose worker died go back to the queue, blasts that stopped moving go again."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import Alert, AlertState, Delivery, DeliveryStatus, utcnow
from .dispatch import dispatch
from .state import filling, finish_if_done


def sweep() -> dict:
    """Return abandoned rows to the queue and re-dispatch blasts that stopped moving.

    Engine internal: commits as it goes (each step must be visible to the workers).
    """
    cfg = current_app.config
    now = utcnow()
    stuck_before = now - timedelta(seconds=cfg["BLAST_STUCK_SECONDS"])
    reset = cast(sa.CursorResult, db.session.execute(
        sa.update(Delivery)
        .where(Delivery.status == DeliveryStatus.SENDING, Delivery.claimed_at < stuck_before)
        .values(status=DeliveryStatus.QUEUED, claim_id=None, error="returned by sweep")
    )).rowcount
    db.session.commit()
    stall_before = now - timedelta(seconds=cfg["BLAST_STALL_SECONDS"])
    redispatched = []
    # A journey step's alert stands in the same way while rows of it are queued or out.
    journey_steps = sa.exists().where(
        Delivery.alert_id == Alert.id,
        Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]))
    sending = db.session.scalars(sa.select(Alert.id).where(sa.or_(
        Alert.state == AlertState.SENDING, sa.and_(Alert.state == AlertState.JOURNEY, journey_steps)))).all()
    for alert_id in sending:
        if finish_if_done(alert_id):
            continue
        queued = sa.exists().where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.QUEUED)
        if not db.session.scalar(sa.select(queued)) and not filling(db.session.get_one(Alert, alert_id)):
            continue  # nothing to dispatch (an A/B test's rest waits, held, for its winner)
        last_dispatch, last_claim = db.session.execute(
            sa.select(Alert.last_dispatch_at,
                      sa.select(sa.func.max(Delivery.claimed_at))
                      .where(Delivery.alert_id == alert_id).scalar_subquery())
            .where(Alert.id == alert_id)
        ).one()
        recent = [t for t in (last_dispatch, last_claim) if t is not None]
        # A batch in flight heartbeats its rows: a blast with one is moving, however slowly
        # its relay lets it. With none and nothing claimed for a while, its queued batch
        # tasks were lost (a worker killed before it claimed them, or a Redis restart).
        in_flight = db.session.scalar(sa.select(sa.exists().where(
            Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.SENDING)))
        if reset or not recent or (max(recent) < stall_before and not in_flight):
            dispatch(alert_id)
            redispatched.append(alert_id)
    return {"returned": reset, "redispatched": redispatched}
