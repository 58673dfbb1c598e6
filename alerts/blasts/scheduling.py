"""Scheduled sends: a draft with a time, started by beat at that time, once.

Several beat processes (or one restarted) may look at the same moment: the start is
claimed by one conditional UPDATE, so exactly one of them launches the blast.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, tzinfo
from typing import cast

import sqlalchemy as sa

from .. import audit
from ..extensions import db
from ..models import Alert, AlertState, AuditEvent, utcnow
from . import approval, control
from .state import BlastError, locked_alert

log = logging.getLogger(__name__)

LAST_YEAR = 9999
BEAT = audit.Actor("system", "beat")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset (or Z); a time without one is refused, not guessed."""
    raw = text.strip()
    when = _calendar_time(text, raw.replace("Z", "+00:00").replace("z", "+00:00"))
    if when.tzinfo is None:
        raise BlastError(f"{text!r} has no time zone: add one, like +00:00 or Z")
    return _in_utc(text, when)


def parse_local(text: str, zone: tzinfo) -> datetime:
    """A wall-clock time (2026-12-01T09:00) in `zone`, as UTC; a date the calendar lacks is refused."""
    return _in_utc(text, _calendar_time(text, text.strip()).replace(tzinfo=zone))


def _calendar_time(text: str, raw: str) -> datetime:
    try:
        return datetime.fromisoformat(raw)
    except ValueError as exc:  # not ISO 8601, or a date the calendar lacks (2026-02-30, year 99999)
        raise BlastError(f"{text!r} is not an ISO 8601 time on the calendar ({exc}); "
                         "write it like 2026-12-01T09:00:00+01:00") from exc


def _in_utc(text: str, when: datetime) -> datetime:
    try:
        return when.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01 east of UTC, 9999-12-31 west of it
        raise BlastError(f"{text!r} is outside the years 1 to 9999 in UTC") from exc


def schedule(alert_id: int, when: datetime) -> Alert:
    """Schedule (or reschedule) a draft; the caller commits."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT:
        raise BlastError(f"alert {alert_id} is {alert.state}; only a draft can be scheduled")
    if when.year >= LAST_YEAR:  # shown in any time zone, a later time would leave the calendar
        raise BlastError(f"{when.astimezone(UTC):%Y-%m-%d %H:%M} UTC is too far ahead; "
                         f"choose a time before the year {LAST_YEAR}")
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
        won = cast(sa.CursorResult, db.session.execute(
            sa.update(Alert)
            .where(Alert.id == alert_id, Alert.state == AlertState.DRAFT,
                   Alert.scheduled_for <= now, Alert.last_dispatch_at.is_(None))
            .values(last_dispatch_at=now)
        )).rowcount
        if not won:
            db.session.rollback()
            continue
        try:
            control.launch(alert_id)
        except approval.ApprovalError as exc:
            db.session.rollback()
            _refused(alert_id, now, str(exc))
            continue
        except BlastError:
            db.session.rollback()
            continue
        db.session.commit()
        started.append(alert_id)
    return started


def _refused(alert_id: int, now: datetime, reason: str) -> None:
    """A due start that lacks its approval: taken off the schedule (a late approval must not
    send it hours after its time), the reason kept in the audit trail for the alert page."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT or alert.scheduled_for is None or alert.scheduled_for > now:
        db.session.rollback()  # another beat got here first, or staff moved it meanwhile
        return
    when = alert.scheduled_for
    alert.scheduled_for = None
    audit.record(BEAT, approval.START_REFUSED, approval.target(alert_id), reason=reason,
                 scheduled_for=when.isoformat())
    db.session.commit()
    log.warning("scheduled alert %s not started and unscheduled: %s", alert_id, reason,
                extra={"alert_id": alert_id})


def refusal(alert: Alert) -> str | None:
    """Why beat took this draft off the schedule, while it stays off it (the alert page says it)."""
    if alert.state != AlertState.DRAFT or alert.scheduled_for is not None:
        return None
    event = db.session.scalar(
        sa.select(AuditEvent).where(AuditEvent.action == approval.START_REFUSED,
                                    AuditEvent.actor_kind == BEAT.kind,
                                    AuditEvent.target == approval.target(alert.id))
        .order_by(AuditEvent.id.desc()).limit(1))
    return None if event is None else (event.detail or {}).get("reason")
