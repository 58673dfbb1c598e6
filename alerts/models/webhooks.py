"""Webhooks: the endpoints staff register, the outbox of messages to them, and each attempt."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Model, UTCDateTime, utcnow


class WebhookState:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # given up: past the schedule, or its endpoint was removed or disabled


class WebhookEndpoint(Model):
    """Where events are posted, which types it wants, and whether it still gets them."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(sa.String(2000))
    secret: Mapped[str] = mapped_column(sa.String(100))  # "whsec_" + base64 of 32 random bytes
    event_types: Mapped[str] = mapped_column(sa.String(500))  # space-separated
    enabled: Mapped[bool] = mapped_column(default=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(320))
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(sa.String(500))
    # Since the first failure after the last success: past WEBHOOK_DISABLE_AFTER_DAYS it is disabled.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Removed by staff: hidden and sent nothing, deleted (with its messages) by the sweep an hour
    # later, so an event being recorded at that moment never names a row that is gone.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def events(self) -> list[str]:
        return self.event_types.split()


class WebhookMessage(Model):
    """One event for one endpoint: the row is the truth, a queued task only a nudge."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        # The sweep's question: which pending rows are due.
        sa.Index("ix_webhook_messages_due", "state", "next_attempt_at"),
        sa.Index("ix_webhook_messages_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    msg_id: Mapped[str] = mapped_column(sa.String(40), unique=True)  # the `webhook-id`, same on retries
    endpoint_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(sa.String(40))
    payload: Mapped[str] = mapped_column(sa.Text)  # the body exactly as sent (and signed)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When a task was last queued for it: the sweep queues one again only after WEBHOOK_CLAIM_SECONDS
    # (a task lost with Redis, or never queued while it was away), not on every pass.
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A claimed row is held until then: a worker killed mid-send leaves it due again after.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(sa.String(16), default=WebhookState.PENDING)
    last_status: Mapped[int | None] = mapped_column()
    last_latency_ms: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookAttempt(Model):
    """One try of a message, for the staff page: when, the answer or the error, how long."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"),
                                            index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(sa.String(500))
    latency_ms: Mapped[int] = mapped_column(default=0)
    response: Mapped[str | None] = mapped_column(sa.String(500))  # the answer's first 500 characters
