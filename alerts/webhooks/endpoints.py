"""Webhook endpoints: add (URL and types checked, a secret made), list, remove, re-enable."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from ..extensions import db
from ..models import WebhookAttempt, WebhookEndpoint, WebhookMessage, WebhookState, utcnow
from . import EVENT_TYPES, outbox, targets

REMOVED_KEPT = timedelta(hours=1)  # a removed endpoint's row outlives any event being recorded


class EndpointError(ValueError):
    """A URL or an event type that cannot be used; the message names it."""


def new_secret() -> str:
    """`whsec_` and the base64 of 32 random bytes, as Standard Webhooks secrets are written."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def clean_events(events: Iterable[str]) -> list[str]:
    """The types asked for, in the usual order; EndpointError naming an unknown one."""
    chosen = {e.strip() for e in events if e.strip()}
    unknown = sorted(chosen - set(EVENT_TYPES))
    if unknown:
        raise EndpointError(f"unknown event type {', '.join(map(repr, unknown))}: "
                            f"one of {', '.join(EVENT_TYPES)}")
    if not chosen:
        raise EndpointError(f"choose at least one event type: {', '.join(EVENT_TYPES)}")
    return [e for e in EVENT_TYPES if e in chosen]


def add(url: str, events: Iterable[str], *, by: str | None) -> WebhookEndpoint:
    """A new endpoint with a new secret; the caller commits (and shows the secret once)."""
    chosen = clean_events(events)
    try:
        targets.check(url, allow_insecure=current_app.config["WEBHOOK_ALLOW_INSECURE"])
    except targets.UnsafeTarget as exc:
        raise EndpointError(str(exc)) from exc
    endpoint = WebhookEndpoint(url=url.strip(), secret=new_secret(), event_types=" ".join(chosen),
                               enabled=True, created_by=by)
    db.session.add(endpoint)
    db.session.flush()
    outbox.forget()
    return endpoint


def listed() -> list[WebhookEndpoint]:
    """Every endpoint not removed, oldest first."""
    return list(db.session.scalars(
        sa.select(WebhookEndpoint).where(WebhookEndpoint.removed_at.is_(None)).order_by(WebhookEndpoint.id)
    ))


def get(endpoint_id: int) -> WebhookEndpoint | None:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    return endpoint if endpoint is not None and endpoint.removed_at is None else None


def remove(endpoint_id: int) -> bool:
    """Stop sending to it at once (its pending messages fail); the sweep deletes it later."""
    endpoint = get(endpoint_id)
    if endpoint is None:
        return False
    endpoint.enabled = False
    endpoint.removed_at = utcnow()
    _fail_pending(endpoint.id, "endpoint removed")
    outbox.forget()
    return True


def disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to it; its pending messages wait (re-enabling sends them)."""
    endpoint.enabled = False
    endpoint.disabled_at = utcnow()
    endpoint.disabled_reason = reason[:500]
    outbox.forget()


def enable(endpoint_id: int) -> bool:
    """Send to it again: its waiting messages are due now, its failing period starts over."""
    endpoint = get(endpoint_id)
    if endpoint is None or endpoint.enabled:
        return False
    endpoint.enabled = True
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.failing_since = None
    db.session.execute(
        sa.update(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint.id, WebhookMessage.state == WebhookState.PENDING)
        .values(next_attempt_at=utcnow(), queued_at=None, claimed_until=None)
    )
    outbox.forget()
    return True


def disabled() -> list[WebhookEndpoint]:
    """Endpoints disabled for failing: the staff notice names them."""
    return list(db.session.scalars(
        sa.select(WebhookEndpoint).where(WebhookEndpoint.removed_at.is_(None),
                                         WebhookEndpoint.disabled_at.is_not(None))
        .order_by(WebhookEndpoint.id)
    ))


def purge_removed(now: datetime | None = None) -> int:
    """Delete endpoints removed over an hour ago, with their messages; the caller commits."""
    cutoff = (now or utcnow()) - REMOVED_KEPT
    gone = list(db.session.scalars(sa.select(WebhookEndpoint.id).where(WebhookEndpoint.removed_at < cutoff)))
    if gone:
        messages = sa.select(WebhookMessage.id).where(WebhookMessage.endpoint_id.in_(gone))
        db.session.execute(sa.delete(WebhookAttempt).where(WebhookAttempt.message_id.in_(messages)))
        db.session.execute(sa.delete(WebhookMessage).where(WebhookMessage.endpoint_id.in_(gone)))
        db.session.execute(sa.delete(WebhookEndpoint).where(WebhookEndpoint.id.in_(gone)))
    return len(gone)


def _fail_pending(endpoint_id: int, reason: str) -> None:
    db.session.execute(
        sa.update(WebhookMessage)
        .where(WebhookMessage.endpoint_id == endpoint_id, WebhookMessage.state == WebhookState.PENDING)
        .values(state=WebhookState.FAILED, last_error=reason, claimed_until=None)
    )
