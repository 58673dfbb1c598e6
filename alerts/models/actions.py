"""The Action Center's actions, the alerts they are linked to, and their signatures."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import Model, UTCDateTime, utcnow


class Action(Model):
    """A petition, pledge, letter or call on the Action Center."""

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
    # Another language's text: {"es": {"title", "summary", "body", "call_to_action",
    # "pledge_text", "call_script"}}; the default language's is in the columns above.
    translations: Mapped[dict | None] = mapped_column(sa.JSON)
    # A letter's subject and fixed text (its signers may add a paragraph where allow_comments
    # is set), and a call's script; the targets are ActionTarget rows.
    letter_subject: Mapped[str | None] = mapped_column(sa.String(200))
    letter_text: Mapped[str | None] = mapped_column(sa.Text)
    call_script: Mapped[str | None] = mapped_column(sa.Text)


KINDS = ("petition", "pledge", "letter", "call")
ERASED = ""  # an erased signature keeps its row (counts add up) with no address or name
CALL_OUTCOMES = ("reached", "voicemail", "busy", "no-answer")


class ActionTarget(Model):
    """A decision-maker a letter is sent to or a call is made to; a placeholder waits for staff
    to put a real one in its place (nothing is sent to it)."""

    __tablename__ = "action_targets"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(sa.ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    name: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.String(200), default="", server_default="")
    email: Mapped[str | None] = mapped_column(sa.String(254))
    phone: Mapped[str | None] = mapped_column(sa.String(32))  # E.164
    placeholder: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionImage(Model):
    """An action's share image, stored resized (1200x630) by the app: every host serves it."""

    __tablename__ = "action_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(sa.ForeignKey("actions.id", ondelete="CASCADE"), unique=True)
    digest: Mapped[str] = mapped_column(sa.String(64))  # of the stored bytes: the URL changes with them
    content_type: Mapped[str] = mapped_column(sa.String(32))
    width: Mapped[int] = mapped_column()
    height: Mapped[int] = mapped_column()
    data: Mapped[bytes] = mapped_column(sa.LargeBinary)
    alt: Mapped[str] = mapped_column(sa.String(300), default="", server_default="")
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LetterDelivery(Model):
    """One signer's letter to one target: queued when the signature counts, sent once."""

    __tablename__ = "letter_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("signature_id", "target_id"),
        sa.Index("ix_letter_deliveries_waiting", "status", "due_at"),
        sa.Index("ix_letter_deliveries_target", "target_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    signature_id: Mapped[int] = mapped_column(sa.ForeignKey("signatures.id", ondelete="CASCADE"))
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("action_targets.id", ondelete="CASCADE"))
    # queued | sending | sent | failed (refused for good) | bounced (accepted, then bounced)
    status: Mapped[str] = mapped_column(sa.String(16), default="queued")
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)  # not before (digest, backoff)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str | None] = mapped_column(sa.String(255), index=True)
    smtp_reply: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CallLog(Model):
    """How one call to one target went, as the caller told it."""

    __tablename__ = "call_logs"
    __table_args__ = (sa.Index("ix_call_logs_target_outcome", "target_id", "outcome"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(sa.ForeignKey("actions.id", ondelete="CASCADE"), index=True)
    target_id: Mapped[int] = mapped_column(sa.ForeignKey("action_targets.id", ondelete="CASCADE"))
    signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signatures.id", ondelete="SET NULL"),
                                                     index=True)
    outcome: Mapped[str] = mapped_column(sa.String(16))  # one of CALL_OUTCOMES
    note: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


alert_actions = sa.Table(
    "alert_actions",
    db.metadata,
    sa.Column("alert_id", sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("action_id", sa.ForeignKey("actions.id", ondelete="CASCADE"), primary_key=True),
)


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
    # alert | action-center | share | direct | import | embed (the channel, not a source code)
    source: Mapped[str] = mapped_column(sa.String(32))
    # The `?source=` code the signer came through (a partner, a newsletter link): reports,
    # the export and audiences read it. None when no code came with the form.
    source_code: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id", ondelete="SET NULL"), index=True)
    delivery_id: Mapped[int | None] = mapped_column(sa.ForeignKey("deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Its confirmation email could not be queued (the broker was away): the sweep queues it.
    confirmation_unqueued: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
