"""Delivery: claim a message, sign it (Standard Webhooks), POST it, record the answer, schedule a retry.

The message row is the truth and a queued task only a nudge: a claim is one conditional UPDATE
(two workers never send one message at once), a worker killed mid-send leaves the row due
again once its claim runs out, and beat's sweep queues every due row whose task was lost.
Engine internal: these functions commit (a claim must be visible before the POST goes out).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
from flask import current_app
from standardwebhooks import Webhook

from .. import queueing, tasknames
from ..extensions import db
from ..models import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookState, utcnow
from . import endpoints, outbox, targets

log = logging.getLogger(__name__)
USER_AGENT = "ActionAlerts-Webhooks/1"
SWEEP_LIMIT = 2000


@dataclass
class Result:
    delivered: int = 0
    failed: int = 0  # tries that got no 2xx (retried later, or given up)
    skipped: int = 0  # not due, claimed elsewhere, already done

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "skipped": self.skipped}


def _hold() -> timedelta:
    cfg = current_app.config
    return timedelta(seconds=cfg["WEBHOOK_TIMEOUT_SECONDS"] + cfg["WEBHOOK_CLAIM_SECONDS"])


def claim(message_id: int, now: datetime | None = None) -> bool:
    """Take a due message for this worker (one conditional UPDATE), committed."""
    now = now or utcnow()
    M, E = WebhookMessage, WebhookEndpoint
    live = sa.select(E.id).where(E.id == M.endpoint_id, E.enabled.is_(True), E.removed_at.is_(None))
    res = db.session.execute(
        sa.update(M)
        .where(M.id == message_id, M.state == WebhookState.PENDING, M.next_attempt_at <= now,
               sa.or_(M.claimed_until.is_(None), M.claimed_until < now), live.exists())
        .values(claimed_until=now + _hold())
    )
    db.session.commit()
    return cast(sa.CursorResult, res).rowcount == 1


def headers_for(endpoint: WebhookEndpoint, message: WebhookMessage, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers: the stable id, this try's time, the signature."""
    signature = Webhook(endpoint.secret).sign(message.msg_id, at, message.payload.encode())
    return {
        "webhook-id": message.msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
    }


def deliver(message_ids: list[int]) -> Result:
    """Send these messages (one endpoint's, in order); after a failure the rest wait for the sweep,
    so a receiver that is down costs one timeout per task, not one per message."""
    result = Result()
    cfg = current_app.config
    for message_id in message_ids:
        if not claim(message_id):
            result.skipped += 1
            continue
        message = db.session.get_one(WebhookMessage, message_id)
        endpoint = db.session.get_one(WebhookEndpoint, message.endpoint_id)
        url, body = endpoint.url, message.payload.encode()
        headers = headers_for(endpoint, message, utcnow())
        db.session.rollback()  # no transaction held open over the POST
        answer = targets.post(url, body, headers, timeout=cfg["WEBHOOK_TIMEOUT_SECONDS"],
                              allow_insecure=cfg["WEBHOOK_ALLOW_INSECURE"])
        record(message_id, answer)
        if answer.ok:
            result.delivered += 1
        else:
            result.failed += 1
            break
    return result


def record(message_id: int, answer: targets.Answer, now: datetime | None = None) -> None:
    """The try's outcome: an attempt row, the message delivered or its next try, the endpoint's
    failing period (disabled past WEBHOOK_DISABLE_AFTER_DAYS); committed."""
    now = now or utcnow()
    cfg = current_app.config
    message = db.session.get_one(WebhookMessage, message_id, with_for_update=True)
    endpoint = db.session.get_one(WebhookEndpoint, message.endpoint_id, with_for_update=True)
    error = answer.error
    if error is None and not answer.ok:
        error = f"answered {answer.status}"
    db.session.add(WebhookAttempt(message_id=message.id, at=now, status=answer.status, error=error,
                                  latency_ms=answer.latency_ms,
                                  response=answer.body[:targets.SNIPPET] or None))
    message.attempts += 1
    message.last_status = answer.status
    message.last_latency_ms = answer.latency_ms
    message.last_error = error
    message.claimed_until = None
    message.queued_at = None
    if answer.ok:
        message.state = WebhookState.DELIVERED
        message.delivered_at = now
        endpoint.failing_since = None
    else:
        schedule: list[float] = cfg["WEBHOOK_RETRY_SCHEDULE"]
        if message.attempts <= len(schedule):
            message.next_attempt_at = now + timedelta(seconds=schedule[message.attempts - 1])
        else:
            message.state = WebhookState.FAILED
            log.warning("webhook %s to endpoint %s given up after %s tries: %s", message.msg_id,
                        endpoint.id, message.attempts, error,
                        extra={"webhook_id": message.msg_id, "endpoint_id": endpoint.id})
        if endpoint.failing_since is None:
            endpoint.failing_since = now
        limit = timedelta(days=cfg["WEBHOOK_DISABLE_AFTER_DAYS"])
        if endpoint.enabled and now - endpoint.failing_since >= limit:
            endpoints.disable(endpoint, f"no 2xx answer since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC "
                                        f"(last: {error})")
            log.warning("webhook endpoint %s disabled: failing since %s", endpoint.id,
                        endpoint.failing_since.isoformat(), extra={"endpoint_id": endpoint.id})
    db.session.commit()


def due(now: datetime | None = None, limit: int = SWEEP_LIMIT) -> list[tuple[int, int]]:
    """(endpoint, message) of due rows with no live claim and no recent task, marked queued now."""
    now = now or utcnow()
    M, E = WebhookMessage, WebhookEndpoint
    stale = now - timedelta(seconds=current_app.config["WEBHOOK_CLAIM_SECONDS"])
    rows = db.session.execute(
        sa.select(M.endpoint_id, M.id).join(E, E.id == M.endpoint_id)
        .where(M.state == WebhookState.PENDING, M.next_attempt_at <= now,
               sa.or_(M.claimed_until.is_(None), M.claimed_until < now),
               sa.or_(M.queued_at.is_(None), M.queued_at < stale),
               E.enabled.is_(True), E.removed_at.is_(None))
        .order_by(M.id).limit(limit)
    ).all()
    ids = [row.id for row in rows]
    for start in range(0, len(ids), 500):
        db.session.execute(sa.update(M).where(M.id.in_(ids[start:start + 500])).values(queued_at=now))
    return [(row.endpoint_id, row.id) for row in rows]


def sweep() -> dict[str, int]:
    """Beat: queue the due messages (one task per endpoint and chunk), delete removed endpoints
    and messages past WEBHOOK_KEEP_DAYS; commits."""
    pairs = due()
    purged = endpoints.purge_removed()
    expired = expire()
    tasks = outbox.chunks(pairs)
    for ids in tasks:
        queueing.after_commit(tasknames.DELIVER_WEBHOOKS, ids)
    db.session.commit()
    return {"queued": len(pairs), "tasks": len(tasks), "endpoints_deleted": purged, "expired": expired}


def expire(now: datetime | None = None, limit: int = 1000) -> int:
    """Delete up to `limit` delivered or failed messages older than WEBHOOK_KEEP_DAYS, with their
    attempts (their payloads quote addresses); the caller commits. Pending ones stay."""
    cutoff = (now or utcnow()) - timedelta(days=current_app.config["WEBHOOK_KEEP_DAYS"])
    M = WebhookMessage
    old = list(db.session.scalars(
        sa.select(M.id).where(M.state != WebhookState.PENDING, M.created_at < cutoff)
        .order_by(M.id).limit(limit)
    ))
    if old:
        db.session.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.message_id.in_(old)))
        db.session.execute(sa.delete(M).where(M.id.in_(old)))
    return len(old)


def redeliver(message_id: int) -> WebhookMessage | None:
    """Send a message again (same webhook-id), its schedule started over; the caller commits."""
    message = db.session.get(WebhookMessage, message_id)
    if message is None:
        return None
    now = utcnow()
    message.state = WebhookState.PENDING
    message.attempts = 0
    message.next_attempt_at = now
    message.queued_at = now
    message.claimed_until = None
    queueing.after_commit(tasknames.DELIVER_WEBHOOKS, [message.id])
    return message


def send_test(endpoint_id: int, by: str) -> WebhookMessage:
    """A `webhook.test` message to one endpoint; the caller commits."""
    from . import TEST_EVENT

    return outbox.for_endpoint(endpoint_id, TEST_EVENT, {"endpoint_id": endpoint_id, "sent_by": by})


def recent(endpoint_id: int, limit: int = 50) -> list[tuple[WebhookMessage, list[WebhookAttempt]]]:
    """An endpoint's latest messages, each with its attempts (newest first), for the staff page."""
    messages = list(db.session.scalars(
        sa.select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
        .order_by(WebhookMessage.id.desc()).limit(limit)
    ))
    attempts: dict[int, list[WebhookAttempt]] = {m.id: [] for m in messages}
    if messages:
        for attempt in db.session.scalars(
            sa.select(WebhookAttempt).where(WebhookAttempt.message_id.in_(list(attempts)))
            .order_by(WebhookAttempt.id.desc())
        ):
            attempts[attempt.message_id].append(attempt)
    return [(m, attempts[m.id]) for m in messages]
