"""The database schema: subscribers and their consent, actions, alerts and deliveries."""

from __future__ import annotations

import enum
import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(timezone.utc)")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def email_hash(email: str) -> str:
    """Suppressions are keyed by a hash, so an erased address is remembered, not kept."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(db.Model):
    __tablename__ = "subscribers"
    # The staff list's order: newest first, read from the index a page at a time.
    __table_args__ = (sa.Index("ix_subscribers_created_at_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    status: Mapped[str] = mapped_column(sa.String(16), default=SubscriberStatus.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A fresh nonce per pending period makes confirmation links single-use.
    confirm_nonce: Mapped[str | None] = mapped_column(sa.String(32))
    last_confirmation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(sa.String(200))

    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="ConsentRecord.id"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status}>"


class ConsentRecord(db.Model):
    """Proof of consent (GDPR art. 7): who agreed to what text, when, from where."""

    __tablename__ = "consent_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    event: Mapped[str] = mapped_column(sa.String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    consent_text_version: Mapped[str | None] = mapped_column(sa.String(64))
    source: Mapped[str | None] = mapped_column(sa.String(200))

    subscriber: Mapped[Subscriber] = relationship(back_populates="consents")


class Suppression(db.Model):
    """Addresses never to be mailed again, by any path."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    reason: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SuppressionLift(db.Model):
    """The audit trail of lifted suppressions: lifting deletes the entry and writes this row.

    So the suppression list only ever holds entries in force, and every send path's check
    stays a plain lookup.
    """

    __tablename__ = "suppression_lifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(sa.String(64), index=True)
    email: Mapped[str | None] = mapped_column(sa.String(254))
    reason: Mapped[str] = mapped_column(sa.String(32))  # the suppression's own reason
    detail: Mapped[str | None] = mapped_column(sa.Text)
    suppressed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lifted_by: Mapped[str] = mapped_column(sa.String(254))
    lift_reason: Mapped[str] = mapped_column(sa.Text)


class BounceKind(enum.StrEnum):
    HARD = "hard"
    SOFT = "soft"
    DELAYED = "delayed"
    COMPLAINT = "complaint"


class BounceEvent(db.Model):
    """One delivery report (DSN) or complaint (ARF) about one recipient, as received.

    No address is kept here: the subscriber and delivery are found from the VERP return
    path or the original Message-ID, and the diagnostic has the recipient's address blanked.
    """

    __tablename__ = "bounce_events"
    __table_args__ = (
        sa.Index("ix_bounce_events_subscriber_kind_at", "subscriber_id", "kind", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    source: Mapped[str] = mapped_column(sa.String(8))  # smtp | imap
    kind: Mapped[str] = mapped_column(sa.String(16))  # a BounceKind
    subscriber_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    matched_by: Mapped[str | None] = mapped_column(sa.String(16))  # verp | message-id | address
    status: Mapped[str | None] = mapped_column(sa.String(16))  # RFC 3463 code, e.g. 5.1.1
    diagnostic: Mapped[str | None] = mapped_column(sa.Text)
    reporter: Mapped[str | None] = mapped_column(sa.String(255))  # Reporting-MTA or sender
    # The report's own Message-ID (hashed): the same report seen twice is applied once.
    report_key: Mapped[str] = mapped_column(sa.String(64), index=True)
    outcome: Mapped[str] = mapped_column(sa.String(120))


class Action(db.Model):
    """A petition or pledge on the Action Center."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    title: Mapped[str] = mapped_column(sa.String(200))
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    call_to_action: Mapped[str] = mapped_column(sa.String(80))
    kind: Mapped[str] = mapped_column(sa.String(16), default="petition")
    url: Mapped[str | None] = mapped_column(sa.String(500))
    is_open: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


alert_actions = sa.Table(
    "alert_actions",
    db.metadata,
    sa.Column("alert_id", sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("action_id", sa.ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True),
)


class AlertState(enum.StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    SENT = "sent"


class Alert(db.Model):
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

    actions: Mapped[list[Action]] = relationship(
        secondary=alert_actions, order_by=(Action.position, Action.id)
    )


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Delivery(db.Model):
    """One row per (alert, subscriber): the record that makes a blast resumable and exactly-once."""

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("alert_id", "subscriber_id"),
        sa.Index("ix_deliveries_alert_status", "alert_id", "status"),
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


class StaffUser(db.Model):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Signature(db.Model):
    """One person's signature on one action; where it came from is what reports and audiences read."""

    __tablename__ = "signatures"
    __table_args__ = (sa.UniqueConstraint("action_id", "email_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(sa.ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    subscriber_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str] = mapped_column(sa.String(254))  # as typed, for delivering to the target
    email_key: Mapped[str] = mapped_column(sa.String(254))  # case-folded: one per (action, address)
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    comment: Mapped[str | None] = mapped_column(sa.Text)
    source: Mapped[str] = mapped_column(sa.String(32))  # alert | action-center | share | direct | import
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Click(db.Model):
    """A click on a link in an alert; per person only when TRACK_CLICKS=person."""

    __tablename__ = "clicks"
    __table_args__ = (sa.Index("ix_clicks_subscriber_at", "subscriber_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    subscriber_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
    link_index: Mapped[int] = mapped_column(default=0)  # which link of the alert (action slot order)
    action_id: Mapped[int | None] = mapped_column(sa.ForeignKey("actions.id", ondelete="SET NULL"))
    machine: Mapped[bool] = mapped_column(default=False)  # HEAD, scanners, prefetchers
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
