"""Scheduled sends: a draft with a time, started by beat at that time, once.

Several beat processes (or one restarted) may look at the same moment: the start is
claimed by one conditional UPDATE, so exactly one of them launches the blast.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from ..extensions import db
from ..models import Alert, AlertState, utcnow
from . import control
from .state import BlastError, locked_alert


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset (or Z); a time without one is refused, not guessed."""
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise BlastError(f"{text!r} is not an ISO 8601 time (like 2026-12-01T09:00:00+01:00)") from exc
    if when.tzinfo is None:
        raise BlastError(f"{text!r} has no time zone: add one, like +00:00 or Z")
    return when.astimezone(UTC)


def schedule(alert_id: int, when: datetime) -> Alert:
    """Schedule (or reschedule) a draft; the caller commits."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a draft can be scheduled")
    if when <= utcnow():
        raise BlastError(f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC is in the past; "
                         "choose a later time or send it now")
    alert.scheduled_for = when
    return alert


def unschedule(alert_id: int) -> Alert:
    """Take a draft off the schedule; the caller commits."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; it is no longer scheduled")
    if alert.scheduled_for is None:
        raise BlastError(f"alert {alert_id} is not scheduled")
    alert.scheduled_for = None
    return alert


def start_due(now: datetime | None = None) -> list[int]:
    """Launch every scheduled draft whose time has come; returns the ids this call started.

    Engine internal: commits each start on its own (the claim must be visible to other beats).
    """
    now = now or utcnow()
    due = db.session.scalars(
        sa.select(Alert.id).where(Alert.state == AlertState.DRAFT, Alert.scheduled_for <= now)
        .order_by(Alert.scheduled_for)
    ).all()
    db.session.commit()  # no read snapshot is held into the claims below
    started = []
    for alert_id in due:
        # The claim: a draft has never been dispatched, so only one caller can set this.
        won = db.session.execute(
            sa.update(Alert)
            .where(Alert.id == alert_id, Alert.state == AlertState.DRAFT,
                   Alert.scheduled_for <= now, Alert.last_dispatch_at.is_(None))
            .values(last_dispatch_at=now)
        ).rowcount
        if not won:
            db.session.rollback()
            continue
        try:
            control.launch(alert_id)
        except BlastError:
            db.session.rollback()
            continue
        db.session.commit()
        started.append(alert_id)
    return started
