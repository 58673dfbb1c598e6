"""The staff subscriber list: search, filter by status, page."""

from __future__ import annotations

import sqlalchemy as sa
from flask import render_template, request

from ...extensions import db
from ...models import Subscriber, SubscriberStatus
from .common import PER_PAGE, page_number
from .dashboard import subscriber_counts


def subscribers():
    status = request.args.get("status", "")
    if status not in {s.value for s in SubscriberStatus}:
        status = ""
    q = " ".join(request.args.get("q", "").split())[:254]
    page = page_number()
    query = sa.select(Subscriber).order_by(Subscriber.created_at.desc(), Subscriber.id.desc())
    if status:
        query = query.where(Subscriber.status == status)
    if q:
        query = query.where(sa.func.lower(Subscriber.email).contains(q.lower(), autoescape=True))
    counts = subscriber_counts()
    # Without a search the total is one of the status counts already made: a second
    # count(*) over the list costs ~100 ms at a million subscribers.
    pagination = db.paginate(query, page=page, per_page=PER_PAGE, error_out=False, count=bool(q))
    if not q:
        pagination.total = counts[status or "all"]
    return render_template(
        "staff/subscribers.html",
        pagination=pagination,
        counts=counts,
        status=status,
        q=q,
        statuses=[s.value for s in SubscriberStatus],
    )
