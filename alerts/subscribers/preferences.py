"""What a subscriber chose to get: topics (none chosen means all) and a pause."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from ..extensions import db
from ..models import Subscriber, SubscriberTopic, utcnow


def N_(label: str) -> str:
    """Marks a label for the catalogue; the page translates it where it is shown (staff see it as is)."""
    return label


# The topics staff tag actions and alerts with, and subscribers choose from (slug, label).
TOPICS: tuple[tuple[str, str], ...] = (
    ("detention", N_("Detention")),
    ("juvenile-justice", N_("Juvenile justice")),
    ("child-welfare", N_("Child welfare")),
    ("lgbtq-youth", N_("LGBTQ+ youth")),
    ("mental-health", N_("Mental health")),
    ("racial-justice", N_("Racial justice")),
)
TOPIC_LABELS = dict(TOPICS)
PAUSE_DAYS = 30


class PreferenceError(ValueError):
    pass


def clean_topics(topics: Iterable[str | None] | None) -> list[str]:
    """Known topic slugs in the canonical order; an unknown one is an error naming it."""
    chosen = [t.strip() for t in (topics or []) if t and t.strip()]
    unknown = [t for t in chosen if t not in TOPIC_LABELS]
    if unknown:
        raise PreferenceError(_("unknown topic %(topics)s; known: %(known)s",
                                topics=", ".join(unknown), known=", ".join(TOPIC_LABELS)))
    return [slug for slug, _ in TOPICS if slug in chosen]


def topics_of(subscriber_id: int) -> list[str]:
    chosen = set(db.session.scalars(
        sa.select(SubscriberTopic.topic).where(SubscriberTopic.subscriber_id == subscriber_id)))
    return [slug for slug, _ in TOPICS if slug in chosen]


def set_topics(subscriber_id: int, topics: Iterable[str | None] | None) -> list[str]:
    """Replace the subscriber's topics (an empty choice means every topic)."""
    chosen = clean_topics(topics)
    db.session.execute(sa.delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber_id))
    for topic in chosen:
        db.session.add(SubscriberTopic(subscriber_id=subscriber_id, topic=topic))
    db.session.flush()
    return chosen


def pause(subscriber: Subscriber, days: int = PAUSE_DAYS) -> None:
    """No alerts for `days`; the subscription itself stays."""
    subscriber.paused_until = utcnow() + timedelta(days=days)


def unpause(subscriber: Subscriber) -> None:
    subscriber.paused_until = None
