"""The database schema: subscribers and their consent, actions, alerts and deliveries."""

from __future__ import annotations

import enum
import hashlib
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .extensions import Base, db

if TYPE_CHECKING:
    Model = Base  # what db.Model is built from at run time; Flask-SQLAlchemy's attribute is untyped
else:
    Model = db.Model


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(timezone.utc)")
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def email_hash(email: str) -> str:
    """Suppressions are keyed by a hash, so an erased address is remembered, not kept."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def email_key(email: str) -> str:
    """The case-folded address: what uniqueness and the cooldown key on (the typed one is mailed)."""
    return email.strip().lower()


def _email_key_default(context: DefaultExecutionContext) -> str:
    return email_key(context.get_current_parameters()["email"])


def new_token_key() -> str:
    """A per-subscriber random value that every link and address for them is bound to."""
    return secrets.token_hex(16)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(Model):
    __tablename__ = "subscribers"
    # Ids are never reused on SQLite either: nothing that once named an erased person can
    # come to name the next one. The staff list's order (newest first) is read from an index.
    __table_args__ = (sa.Index("ix_subscribers_created_at_id", "created_at", "id"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))  # as typed: what we send to
    # Uniqueness and the confirmation cooldown key on this (NULL only for case variants
    # that were already on the list before it existed; see migration i9_security).
    email_key: Mapped[str | None] = mapped_column(sa.String(254), unique=True, default=_email_key_default)
    # Signed into unsubscribe and confirmation links and the List-Unsubscribe mailto
    # address: a link dies with its subscriber and names no sequential id.
    token_key: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_token_key)
    # On the list before links were bound to token_key: emails already sent to them carry a
    # signed id, still honoured for unsubscribing (never for data or erasure); see tokens.py.
    legacy_links: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    status: Mapped[str] = mapped_column(sa.String(16), default=SubscriberStatus.PENDING, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Indexed for the dashboard's series, which read only the last 30 days of each.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # A fresh nonce per pending period makes confirmation links single-use.
    confirm_nonce: Mapped[str | None] = mapped_column(sa.String(32))
    last_confirmation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    source: Mapped[str | None] = mapped_column(sa.String(200))
    # "Pause for a month" from the preferences page: no alert until then.
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The confirmation whose welcome is settled (sent, or not wanted by the import that
    # confirmed them): one welcome per confirmation, and none the importer did not ask for.
    welcomed_for: Mapped[datetime | None] = mapped_column(UTCDateTime)

    consents: Mapped[list[ConsentRecord]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", order_by="ConsentRecord.id"
    )

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.status}>"


class ConsentRecord(Model):
    """Proof of consent (GDPR art. 7): who agreed to what text, when, from where."""

    __tablename__ = "consent_records"
    # The dashboard's unsubscribes per day and signups by source, read from the index alone.
    __table_args__ = (sa.Index("ix_consent_records_at_event_source", "at", "event", "source"),)

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


class Suppression(Model):
    """Addresses never to be mailed again, by any path."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # Every recipient count and blast start checks each subscriber's address against this.
    email: Mapped[str | None] = mapped_column(sa.String(254), index=True)
    reason: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SuppressionLift(Model):
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


class BounceEvent(Model):
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


class Action(Model):
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
    topics: Mapped[list] = mapped_column(sa.JSON, default=list)  # topic slugs staff tag it with
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # What the action's own page says and asks (issue 10): the full text, whom it addresses,
    # the words a pledge signer commits to, the goal (None: the next round number), whether
    # a comment box is shown, and whether a signature counts only once its address confirms.
    body: Mapped[str] = mapped_column(sa.Text, default="", server_default="")
    target: Mapped[str | None] = mapped_column(sa.String(200))
    pledge_text: Mapped[str | None] = mapped_column(sa.Text)
    goal: Mapped[int | None] = mapped_column()
    allow_comments: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    requires_confirmation: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


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

class StaffUser(Model):
    __tablename__ = "staff_users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Carried in the session cookie and checked on every request: bumping it (logout,
    # a password change, a lockout) ends every session of this account at once.
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")


class SignupAttempt(Model):
    """A signup as received, before anything is decided about the address.

    `POST /subscribe` writes one of these and queues one task on every branch, so the
    answer takes the same steps whatever the address's state; the task decides.
    """

    __tablename__ = "signup_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    user_agent: Mapped[str | None] = mapped_column(sa.String(512))
    source: Mapped[str] = mapped_column(sa.String(200), default="web-form")


class Signature(Model):
    """One person's signature on one action; where it came from is what reports and audiences read."""

    __tablename__ = "signatures"
    __table_args__ = (
        sa.UniqueConstraint("action_id", "email_key"),
        # Audiences match signatures made before subscribing by address.
        sa.Index("ix_signatures_email_key", "email_key"),
        sa.Index("ix_signatures_action_confirmed", "action_id", "confirmed_at"),
        # The sweep's look for confirmations to queue reads only the (few) rows flagged.
        sa.Index("ix_signatures_confirmation_unqueued", "id",
                 postgresql_where=sa.text("confirmation_unqueued"),
                 sqlite_where=sa.text("confirmation_unqueued")),
    )

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
    # Its confirmation email could not be queued (the broker was away): the sweep queues it.
    confirmation_unqueued: Mapped[bool] = mapped_column(default=False, server_default=sa.false())


class Click(Model):
    """A click on a link in an alert; per person only when TRACK_CLICKS=person."""

    __tablename__ = "clicks"
    __table_args__ = (
        sa.Index("ix_clicks_subscriber_at", "subscriber_id", "at"),
        sa.Index("ix_clicks_delivery_id", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    subscriber_id: Mapped[int | None] = mapped_column(sa.ForeignKey("subscribers.id", ondelete="CASCADE"))
    link_index: Mapped[int] = mapped_column(default=0)  # which link of the alert (action slot order)
    action_id: Mapped[int | None] = mapped_column(sa.ForeignKey("actions.id", ondelete="SET NULL"))
    machine: Mapped[bool] = mapped_column(default=False)  # HEAD, scanners, prefetchers
    # Why it is a machine's (machines.HEAD, BURST, ...): a burst split between drains finds its start.
    machine_reason: Mapped[str | None] = mapped_column(sa.String(16))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlertLink(Model):
    """A link as it was in an alert when its blast started: the only places /r/ may lead to."""

    __tablename__ = "alert_links"

    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    link_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    action_id: Mapped[int | None] = mapped_column(sa.ForeignKey("actions.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(sa.String(1000))


class ClickCount(Model):
    """Click counters per (alert, link); link_index -1 counts the alert as a whole (unique people).

    All TRACK_CLICKS=aggregate keeps; per-person rows are folded in here when they expire
    or their subscriber is erased, so an alert's figures stay put.
    """

    __tablename__ = "click_counts"

    alert_id: Mapped[int] = mapped_column(sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True)
    link_index: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    clicks: Mapped[int] = mapped_column(default=0)  # human, total
    unique_clicks: Mapped[int] = mapped_column(default=0)  # human, one per recipient
    machine_clicks: Mapped[int] = mapped_column(default=0)
    clicks_hour: Mapped[int] = mapped_column(default=0)  # the same, within an hour of the blast's start
    unique_hour: Mapped[int] = mapped_column(default=0)
    clicks_day: Mapped[int] = mapped_column(default=0)
    unique_day: Mapped[int] = mapped_column(default=0)
    clicks_week: Mapped[int] = mapped_column(default=0)
    unique_week: Mapped[int] = mapped_column(default=0)


class ClickBatch(Model):
    """A batch of clicks taken from Redis, written in the same transaction as its clicks.

    A drainer that died after its commit but before deleting the batch from Redis finds it
    here and does not record it twice.
    """

    __tablename__ = "click_batches"

    id: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class SubscriberTopic(Model):
    """A topic a subscriber chose; choosing none means every topic."""

    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(40), primary_key=True, index=True)


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
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
