"""The audit trail: one row per staff, API or operator action that changed something."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .base import Model, UTCDateTime, utcnow


class AuditEvent(Model):
    """Append-only: nothing updates or deletes a row (on PostgreSQL and SQLite a trigger refuses)."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_actor_at", "actor", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # staff (a staff account's address), api (a token's name), cli (the operator), system
    actor_kind: Mapped[str] = mapped_column(sa.String(16))
    actor: Mapped[str] = mapped_column(sa.String(254))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)  # e.g. alert.send, staff.role
    target: Mapped[str | None] = mapped_column(sa.String(200))  # e.g. "alert 12", "staff 3"
    ip: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[dict | None] = mapped_column(sa.JSON)
