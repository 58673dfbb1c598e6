"""Saved audiences: named rules staff pick again on the compose page."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from ..models import SavedAudience
from .rules import AudienceError, Rules


def saved_audiences() -> list[SavedAudience]:
    return list(db.session.scalars(sa.select(SavedAudience).order_by(SavedAudience.name)))


def save_audience(name: str, rules: Rules, created_by: str | None = None) -> SavedAudience:
    """Create or replace the audience of that name."""
    name = " ".join((name or "").split())
    if not name:
        raise AudienceError("give the audience a name")
    if len(name) > 120:
        raise AudienceError("the audience's name is longer than 120 characters")
    item = db.session.scalar(sa.select(SavedAudience).where(SavedAudience.name == name))
    if item is None:
        item = SavedAudience(name=name, created_by=created_by)
        db.session.add(item)
    item.rules = rules.to_json()
    db.session.flush()
    return item


def delete_saved(audience_id: int) -> None:
    db.session.execute(sa.delete(SavedAudience).where(SavedAudience.id == audience_id))
