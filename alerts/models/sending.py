"""Alerts, their deliveries, A/B tests, saved audiences and the staff-edited email texts."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .actions import Action, alert_actions
from .base import Model, UTCDateTime, utcnow


class AlertState(enum.StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    SENT = "sent"
    # A journey step's email: standing, sent to each person as they reach the step, never a
    # blast and never finished (alerts.journeys).
    JOURNEY = "journey"


class Alert(Model):
    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(200))
    preheader: Mapped[str] = mapped_column(sa.String(200), default="")
    intro_md: Mapped[str] = mapped_column(sa.Text, default="")
    state: Mapped[str] = mapped_column(sa.String(16), default=AlertState.DRAFT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_dispatch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A draft with a time is started by beat at that time (alerts.blasts.scheduling).
    scheduled_for: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str | None] = mapped_column(sa.String(254))
    # Who it goes to: audience rules (alerts/audiences/rules.py); null means the default audience.
    audience: Mapped[dict | None] = mapped_column(sa.JSON)
    # A reminder or an A/B winner's follow-up names the alert it came from.
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id", ondelete="SET NULL"))
    # Recipients are fixed in chunks by subscriber id (alerts.blasts.state.fix_next_chunk):
    # those up to fill_after have delivery rows; the blast ends only once it reaches
    # fill_through, the highest subscriber id when the send began.
    fill_after: Mapped[int | None] = mapped_column(sa.Integer)
    fill_through: Mapped[int | None] = mapped_column(sa.Integer)
    recipients_expected: Mapped[int | None] = mapped_column(sa.Integer)
    # Two-person approval (alerts.blasts.approval): who approved, when, and a digest of what
    # they saw (content, audience, sender, schedule); any change to those voids it.
    approved_by: Mapped[str | None] = mapped_column(sa.String(254))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_digest: Mapped[str | None] = mapped_column(sa.String(64))
    approved_recipients: Mapped[int | None] = mapped_column(sa.Integer)
    # Another language's text: {"es": {"subject", "preheader", "intro_md"}}; the default
    # language's is in the columns above.
    translations: Mapped[dict | None] = mapped_column(sa.JSON)

    actions: Mapped[list[Action]] = relationship(
        secondary=alert_actions, order_by=(Action.position, Action.id)
    )


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    HELD = "held"  # an A/B test's rest, waiting for the winner


class Delivery(Model):
    """One row per (alert, subscriber): the record that makes a blast resumable and exactly-once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "subscriber_id"),
        sa.Index("ix_deliveries_alert_status", "alert_id", "status"),
        # The live page's rate (sent in the last 30 s) without reading a million-row alert.
        sa.Index("ix_deliveries_alert_sent_at", "alert_id", "sent_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(sa.String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claim_id: Mapped[str | None] = mapped_column(sa.String(36))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(sa.Text)
    variant: Mapped[int | None] = mapped_column()  # A/B: the one subject this person gets

    @property
    def tries(self) -> int:
        """Every try at delivering it: the refused ones `attempts` counts, and the accepted one."""
        return self.attempts + (1 if self.status == DeliveryStatus.SENT else 0)


class SavedAudience(Model):
    """A named set of audience rules staff reuse."""

    __tablename__ = "saved_audiences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    rules: Mapped[dict] = mapped_column(sa.JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(254))


class AbTest(Model):
    """An alert's A/B subject test: its variants, sample, wait, and how it ended."""

    __tablename__ = "ab_tests"

    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    # [{"subject": ..., "from_name": ... or null}, ...]; variant 0 is the alert's own subject.
    variants: Mapped[list] = mapped_column(sa.JSON)
    sample_pct: Mapped[int] = mapped_column()  # per variant
    wait_minutes: Mapped[int] = mapped_column()
    metric: Mapped[str] = mapped_column(sa.String(16), default="clicks")  # clicks | signatures
    breaker_pct: Mapped[float] = mapped_column(default=1.0)  # unsubscribes + complaints per sent
    seed: Mapped[int | None] = mapped_column()
    state: Mapped[str] = mapped_column(sa.String(16), default="draft")  # draft testing decided stopped
    decide_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    winner: Mapped[int | None] = mapped_column()
    reason: Mapped[str | None] = mapped_column(sa.Text)
    results: Mapped[list | None] = mapped_column(sa.JSON)


class EmailText(Model):
    """Staff-editable email text (the welcome email)."""

    __tablename__ = "email_texts"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(sa.String(200))
    body_md: Mapped[str] = mapped_column(sa.Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    translations: Mapped[dict | None] = mapped_column(sa.JSON)  # {"es": {"subject", "body_md"}}
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
