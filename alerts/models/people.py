"""Subscribers and their consent, suppressions and bounces, signup attempts, topics, staff."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Model, UTCDateTime, _email_key_default, new_token_key, utcnow


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class Subscriber(Model):
    __tablename__ = "subscribers"
    # Ids are never reused on SQLite either: nothing that once named an erased person can
    # come to name the next one. The staff list's order (newest first) is read from an index.
    # The API's list filtered by source pages through (source, id): an index range scan, even for
    # a source no row has (the primary key alone would be read whole).
    __table_args__ = (sa.Index("ix_subscribers_created_at_id", "created_at", "id"),
                      sa.Index("ix_subscribers_source_id", "source", "id"),
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
    # Given through the API (a CRM's record of the person); none is required.
    first_name: Mapped[str | None] = mapped_column(sa.String(100))
    last_name: Mapped[str | None] = mapped_column(sa.String(100))
    postal_code: Mapped[str | None] = mapped_column(sa.String(20))
    language: Mapped[str | None] = mapped_column(sa.String(16))
    phone: Mapped[str | None] = mapped_column(sa.String(20))  # E.164, as phonenumbers formats it
    # What a signup typed for an address already on the list: kept apart, and saved only when
    # the address's owner confirms by the emailed link (anyone can type anyone's address).
    pending_profile: Mapped[dict | None] = mapped_column(sa.JSON)

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
    # What the account may do (alerts.permissions.Role); the first account is the owner.
    role: Mapped[str] = mapped_column(sa.String(16), default="editor", server_default="editor")
    # A disabled account cannot log in, and its sessions ended when it was disabled.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An invited account has no usable password until its invitation link sets one.
    invited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by: Mapped[str | None] = mapped_column(sa.String(254))
    # TOTP (RFC 6238): the base32 secret, set when confirmed with a first code; the last
    # time step accepted, so a code is accepted once.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)


class StaffRecoveryCode(Model):
    """One of an account's ten single-use recovery codes, kept as a hash."""

    __tablename__ = "staff_recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(sa.ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


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
    # What the form asked for besides the address ({"first_name": ..., "fields": {key: [...]}}).
    profile: Mapped[dict | None] = mapped_column(sa.JSON)


class SubscriberTopic(Model):
    """A topic a subscriber chose; choosing none means every topic."""

    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    topic: Mapped[str] = mapped_column(sa.String(40), primary_key=True, index=True)


class SubscriberField(Model):
    """A field staff defined for subscribers (alerts.subscribers.fields), or the settings of a
    built-in one (first_name, ...): whether the signup form asks for it, and must."""

    __tablename__ = "subscriber_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(40), unique=True)  # as in {key|fallback} and CSV headers
    label: Mapped[str] = mapped_column(sa.String(100))
    kind: Mapped[str] = mapped_column(sa.String(16))  # alerts.subscribers.fields.KINDS
    choices: Mapped[list | None] = mapped_column(sa.JSON)  # for choice and choices
    required: Mapped[bool] = mapped_column(default=False)
    on_signup: Mapped[bool] = mapped_column(default=False)  # shown on the signup forms
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubscriberFieldValue(Model):
    """One value of a custom field for one subscriber; a several-choices field has one row per
    choice, so an audience's "chose X" is one index lookup whatever the kind."""

    __tablename__ = "subscriber_field_values"
    __table_args__ = (sa.Index("ix_subscriber_field_values_field_value", "field_id", "value"),)

    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True)
    field_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscriber_fields.id", ondelete="CASCADE"), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(500), primary_key=True)
