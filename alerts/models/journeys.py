"""Journeys: a trigger, steps that are emails after a delay, and where each person is in them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Model, UTCDateTime, utcnow
from .sending import Alert

# What puts a person in a journey: confirming, signing an action (signed:SLUG), an import that asks.
TRIGGERS = ("confirmed", "signed:", "imported")


class Journey(Model):
    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    trigger: Mapped[str] = mapped_column(sa.String(140), index=True)
    paused: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str | None] = mapped_column(sa.String(254))

    steps: Mapped[list[JourneyStep]] = relationship(
        order_by="JourneyStep.position", back_populates="journey",
        primaryjoin="and_(Journey.id == JourneyStep.journey_id, JourneyStep.removed == False)",  # noqa: E712
        viewonly=True)


class JourneyStep(Model):
    """One email of a journey. Its content and its deliveries are its own alert's (state
    "journey"): composed and previewed like an alert, sent by the blast engine's batches."""

    __tablename__ = "journey_steps"
    __table_args__ = (sa.UniqueConstraint("journey_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(sa.ForeignKey("journeys.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column()
    # The wait after the previous step (after entering, for the first).
    after_minutes: Mapped[int] = mapped_column(default=0)
    # Skipped for those who have signed this action (the journey's ask is done).
    unless_signed_action_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("actions.id", ondelete="SET NULL"))
    # Only for those who did not click the previous step's email (TRACK_CLICKS=person).
    only_if_not_clicked_previous: Mapped[bool] = mapped_column(default=False)
    # The welcome email of the subscribers' path is this step (sent on confirmation).
    is_welcome: Mapped[bool] = mapped_column(default=False)
    # A removed step keeps its alert and figures; nobody gets it any more.
    removed: Mapped[bool] = mapped_column(default=False)
    alert_id: Mapped[int | None] = mapped_column(sa.ForeignKey("alerts.id", ondelete="SET NULL"))

    journey: Mapped[Journey] = relationship(back_populates="steps")
    alert: Mapped[Alert | None] = relationship()


class JourneyMember(Model):
    """A person in a journey: the next step they are due and when; one row per (journey, person)."""

    __tablename__ = "journey_members"
    __table_args__ = (
        sa.UniqueConstraint("journey_id", "subscriber_id"),
        # Beat's pass: who is due, in due order, among those still in.
        sa.Index("ix_journey_members_due", "due_at",
                 sqlite_where=sa.text("exited_at IS NULL"), postgresql_where=sa.text("exited_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    journey_id: Mapped[int] = mapped_column(sa.ForeignKey("journeys.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"), index=True)
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_position: Mapped[int] = mapped_column(default=1)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # completed | unsubscribed | suppressed | not-confirmed | goal | removed
    exit_reason: Mapped[str | None] = mapped_column(sa.String(32))
