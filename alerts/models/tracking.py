"""Tracked links, clicks and their counts."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Model, UTCDateTime, utcnow


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
