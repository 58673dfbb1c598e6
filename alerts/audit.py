"""The audit trail's one door: every change a person makes is recorded here, in its transaction.

Views, commands and API handlers call `record` before they commit, so a change and its record
land together or not at all. Nothing here updates or deletes a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
