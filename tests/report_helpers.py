"""A month of list activity for report and dashboard tests: confirmations, unsubscribes,
signups by source, signatures per action. Deterministic, written straight to the tables."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Action, ConsentRecord, Signature, Subscriber, utcnow
from tests.helpers import seed_actions

SOURCES = ("web-form", "Pride march 2026 (paper)", "petition:close-rikers")


def month_of_activity(days: int = 30, base: int = 0) -> None:
    """Per day d (0 = 29 days ago): 1 + (d * 7) % 5 confirmations; an unsubscribe every 4th day."""
    seed_actions()
    actions = list(db.session.scalars(sa.select(Action).order_by(Action.position)))
    today = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    n = base
    for d in range(days):
        day = today - timedelta(days=days - 1 - d)
        for k in range(1 + (d * 7) % 5):
            n += 1
            sub = Subscriber(email=f"m{n:05d}@example.org", status="confirmed", created_at=day,
                             confirmed_at=day + timedelta(minutes=k), source=SOURCES[n % 3])
            if d % 4 == 3 and k == 0:
                sub.status = "unsubscribed"
                sub.unsubscribed_at = day + timedelta(hours=2)
                sub.consents.append(ConsentRecord(event="unsubscribe:link", at=sub.unsubscribed_at))
            sub.consents.insert(0, ConsentRecord(event="signup", at=day, source=SOURCES[n % 3]))
            db.session.add(sub)
        for i, action in enumerate(actions[:3]):
            for s in range((d + i) % 3):
                email = f"signer{d}-{i}-{s}@example.org"
                db.session.add(Signature(action_id=action.id, email=email, email_key=email, name="S",
                                         source="action-center", created_at=day + timedelta(minutes=s)))
    # Confirmed long before the window, one of them gone before it started.
    old = today - timedelta(days=200)
    db.session.add(Subscriber(email="old1@example.org", status="confirmed", created_at=old, confirmed_at=old))
    db.session.add(Subscriber(email="old2@example.org", status="unsubscribed", created_at=old,
                              confirmed_at=old, unsubscribed_at=old + timedelta(days=10)))
    db.session.commit()


def end_of(day) -> datetime:
    from datetime import UTC

    return datetime.combine(day, datetime.max.time(), UTC)
