"""Per-person clicks are kept CLICK_RETENTION_DAYS after an alert's blast began, then only counted."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app

from .. import clickcounts
from ..extensions import db
from ..models import Alert, Click, ClickBatch, utcnow

BATCH_MEMORY = timedelta(days=2)  # far longer than a drainer can take to delete a batch from Redis


def expire() -> dict:
    """Fold the rows of alerts past retention into their counters. Engine internal: commits."""
    cutoff = utcnow() - timedelta(days=current_app.config["CLICK_RETENTION_DAYS"])
    old_alerts = sa.select(Alert.id).where(Alert.started_at < cutoff)
    folded = clickcounts.fold(Click.alert_id.in_(old_alerts))
    forgotten = cast(sa.CursorResult, db.session.execute(
        sa.delete(ClickBatch).where(ClickBatch.recorded_at < utcnow() - BATCH_MEMORY)
    )).rowcount
    db.session.commit()
    return {"clicks_folded": folded, "batches_forgotten": max(forgotten, 0)}
