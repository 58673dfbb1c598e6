"""The audit trail's one door: every change a person makes is recorded here, in its transaction.

Views, commands and API handlers call `record` before they commit, so a change and its record
land together or not at all. Nothing here updates or deletes a row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .extensions import db
from .models import AuditEvent

TARGET_MAX = 200
ACTOR_MAX = 254


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff member (by address), an API token (by name), the operator at the CLI."""

    kind: str  # staff | api | cli | system
    name: str
    ip: str | None = None


def record(actor: Actor, action: str, target: str | None = None, **detail: Any) -> AuditEvent:
    """Add one audit row to the session (the caller commits, with the change it describes)."""
    event = AuditEvent(actor_kind=actor.kind, actor=actor.name[:ACTOR_MAX], action=action,
                       target=target[:TARGET_MAX] if target else None, ip=actor.ip,
                       detail=detail or None)
    db.session.add(event)
    return event


@dataclass(frozen=True)
class Filters:
    """What the audit page, its CSV and `alerts audit` narrow the trail by (all optional)."""

    actor: str = ""  # part of the actor's name, e.g. an address or "api:"
    action: str = ""  # an action or its start, e.g. "alert." or "login"
    target: str = ""  # e.g. "alert 12"
    since: datetime | None = None
    until: datetime | None = None

    def query(self) -> sa.Select:
        """The matching events, newest first."""
        query = sa.select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        if self.actor:
            query = query.where(sa.func.lower(AuditEvent.actor).contains(self.actor.lower(), autoescape=True))
        if self.action:
            query = query.where(AuditEvent.action.startswith(self.action, autoescape=True))
        if self.target:
            query = query.where(AuditEvent.target == self.target)
        if self.since is not None:
            query = query.where(AuditEvent.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEvent.at < self.until)
        return query


CSV_HEADER = ("at", "actor_kind", "actor", "ip", "action", "target", "detail")


def as_row(event: AuditEvent) -> tuple[str, str, str, str, str, str, str]:
    """One event as the CSV and the command line print it (the detail as compact JSON)."""
    detail = (json.dumps(event.detail, sort_keys=True, separators=(",", ":"), default=str)
              if event.detail else "")
    return (event.at.isoformat(), event.actor_kind, event.actor, event.ip or "", event.action,
            event.target or "", detail)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    return {"id": event.id, "at": event.at.isoformat(), "actor_kind": event.actor_kind, "actor": event.actor,
            "ip": event.ip, "action": event.action, "target": event.target, "detail": event.detail}
