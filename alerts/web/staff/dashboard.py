"""The staff home page."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template

from ...extensions import db
from ...models import Action, Alert, Subscriber, SubscriberStatus
from . import bp


def subscriber_counts() -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Subscriber.status, sa.func.count()).group_by(Subscriber.status)
    ).all()
    by = dict(rows)
    counts = {s.value: by.get(s.value, 0) for s in SubscriberStatus}
    counts["all"] = sum(by.values())
    return counts


@bp.get("/")
def dashboard():
    recent = db.session.scalars(
        sa.select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc()).limit(8)
    ).all()
    open_actions = db.session.scalar(
        sa.select(sa.func.count()).select_from(Action).where(Action.is_open.is_(True))
    )
    return render_template(
        "staff/dashboard.html", counts=subscriber_counts(), alerts=recent, open_actions=open_actions
    )


