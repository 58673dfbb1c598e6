"""Where a blast stands: counts, rate, time left (the CLI and the staff page read this)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis
import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..mail import pacing, smtp
from ..models import Alert, AlertState, Delivery, DeliveryStatus, utcnow
from .state import BlastError, filling

RATE_WINDOW_SECONDS = 30
# A sending blast with rows waiting and nothing sent for this long has stalled (the relay
# or the workers are away): no rate and no time left, which would both be made up from the
# sends of the last RATE_WINDOW_SECONDS. Half that window: a blast sends several a second.
STALLED_SECONDS = 15


def counts(alert_id: int) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Delivery.status, sa.func.count())
        .where(Delivery.alert_id == alert_id)
        .group_by(Delivery.status)
    ).all()
    by = {status: n for status, n in rows}
    out = {s.value: by.get(s.value, 0) for s in DeliveryStatus}
    out["total"] = sum(by.values())
    return out


def counts_by_alert(alert_ids: list[int]) -> dict[int, dict[str, int]]:
    """`counts` for a page of alerts in one query (the staff list shows sent and failed)."""
    out = {i: {**{s.value: 0 for s in DeliveryStatus}, "total": 0} for i in alert_ids}
    if not alert_ids:
        return out
    rows = db.session.execute(
        sa.select(Delivery.alert_id, Delivery.status, sa.func.count())
        .where(Delivery.alert_id.in_(alert_ids))
        .group_by(Delivery.alert_id, Delivery.status)
    ).all()
    for alert_id, status_, n in rows:
        out[alert_id][status_] = n
        out[alert_id]["total"] += n
    return out


def status(alert_id: int, now: datetime | None = None) -> dict:
    """What the CLI and the staff page show: counts, rate, time left (`now`: tests' clock)."""
    alert = db.session.get(Alert, alert_id, populate_existing=True)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    c = counts(alert_id)
    still_filling = alert.state in (AlertState.SENDING, AlertState.PAUSED) and filling(alert)
    if still_filling:
        # Recipients not yet given their rows are waiting too (counted when the send began).
        gap = max(0, (alert.recipients_expected or 0) - c["total"])
        c["queued"] += gap
        c["total"] += gap
    now = now or utcnow()
    window = RATE_WINDOW_SECONDS
    recent, last_sent = db.session.execute(
        sa.select(sa.func.count(Delivery.id).filter(
                      Delivery.sent_at >= now - timedelta(seconds=window)),
                  sa.func.max(Delivery.sent_at))
        .where(Delivery.alert_id == alert_id)
    ).one()
    elapsed = ((alert.finished_at or now) - alert.started_at).total_seconds() if alert.started_at else 0
    if alert.state == AlertState.SENDING:
        # The last 30 s, or since the start when the blast is younger than that.
        rate = recent / max(1.0, min(window, elapsed))
    elif alert.state == AlertState.PAUSED:
        rate = 0  # nothing is being sent, so there is no rate and no time left to show
    else:
        rate = c["sent"] / elapsed if elapsed else 0
    remaining = c["queued"] + c["sending"]
    done = c["sent"] + c["failed"] + c["skipped"]
    stalled_since = None
    shown_rate: float | None = rate
    if alert.state == AlertState.SENDING and remaining:
        since = max([t for t in (last_sent, alert.started_at) if t is not None], default=None)
        if since is not None and (now - since).total_seconds() > STALLED_SECONDS:
            stalled_since, shown_rate = since, None
    return {
        "id": alert.id,
        "state": alert.state,
        **c,
        "done": done,
        "percent": round(100 * done / c["total"], 1) if c["total"] else float(alert.state == "sent") * 100,
        "rate_per_second": None if shown_rate is None else round(shown_rate, 1),
        "seconds_left": round(remaining / shown_rate) if shown_rate and remaining else None,
        "stalled_since": stalled_since.isoformat() if stalled_since else None,
        "stalled_words": stalled_words(stalled_since),
        "scheduled_for": alert.scheduled_for.isoformat() if alert.scheduled_for else None,
        "filling": still_filling,
        "pace": pace() if alert.state in (AlertState.SENDING, AlertState.PAUSED) else None,
        "started_at": alert.started_at.isoformat() if alert.started_at else None,
        "finished_at": alert.finished_at.isoformat() if alert.finished_at else None,
    }


def stalled_words(since: datetime | None) -> str | None:
    """ "stalled since 14:05 EST": the time in the organisation's zone (ORG_TIMEZONE)."""
    if since is None:
        return None
    local = since.astimezone(ZoneInfo(current_app.config["ORG_TIMEZONE"]))
    return f"stalled since {local:%H:%M %Z}"


def pace() -> dict:
    """How fast each relay is being sent to, and why: what staff see beside the rate."""
    cfg = current_app.config
    try:
        relays = smtp.parse_relays(cfg["SMTP_URL"])
    except smtp.MailConfigError as exc:
        return {"why": f"SMTP_URL is wrong: {exc}", "relays": []}
    state = pacing.for_url(cfg.get("REDIS_URL"))
    out = []
    for relay in relays:
        limits = pacing.Limits(relay.max_rate or cfg["SMTP_MAX_RATE"],
                               relay.max_connections or cfg["SMTP_MAX_CONNECTIONS"])
        try:
            out.append(state.describe(relay.name, limits) if state else
                       {"relay": relay.name, "state": "ok", "why": "as fast as the relay accepts"})
        except redis.RedisError:
            out.append({"relay": relay.name, "state": "unknown", "why": "pacing state unavailable"})
    # The one sentence: the slowest reason wins (down, then throttled, then configured).
    order = {"down": 0, "throttled": 1, "unknown": 2, "ok": 3}
    worst = min(out, key=lambda r: order.get(r["state"], 3))
    why = worst["why"] if len(out) == 1 else f"{worst['relay']}: {worst['why']}"
    return {"why": why, "relays": out}


def duration_words(seconds: float | None) -> str:
    """Time left as a person says it (the CLI and the staff pages; staff.js says it the same way)."""
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"
