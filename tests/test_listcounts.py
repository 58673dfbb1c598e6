"""Whole-list counts cached in Redis: the dashboard and the subscriber list stay exact after a change."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from alerts import listcounts
from alerts.extensions import db
from alerts.models import Subscriber, utcnow
from tests.helpers import add_confirmed, make_alert, subscribe


def _card(page: str, label: str) -> int:
    found = re.search(r'<span class="stat-number">([\d,]+)</span><span class="stat-label">' + label, page)
    assert found, label
    return int(found.group(1).replace(",", ""))


@pytest.mark.commits
def test_counts_are_cached_until_the_list_changes(app, ctx):
    add_confirmed(3)
    assert listcounts.by_status()["confirmed"] == 3
    # A row written behind the app's back (psql, another program) is not seen until the TTL...
    other = sa.create_engine(db.engine.url)
    with other.begin() as conn:
        conn.execute(sa.insert(Subscriber.__table__).values(
            email="behind@example.org", email_key="behind@example.org", token_key="b" * 32,
            status="confirmed", created_at=utcnow()))
    other.dispose()
    assert listcounts.by_status()["confirmed"] == 3
    # ...but any write through the app's engine counts afresh after its commit.
    db.session.execute(sa.update(Subscriber).where(Subscriber.email == "sub00000@example.org")
                       .values(status="unsubscribed", unsubscribed_at=utcnow()))
    assert listcounts.by_status()["confirmed"] == 3, "not yet committed: the cache still stands"
    db.session.commit()
    counts = listcounts.by_status()
    assert counts == {"pending": 0, "confirmed": 3, "unsubscribed": 1, "all": 4}


def test_a_rolled_back_write_leaves_the_counts_right(app, ctx):
    add_confirmed(2)
    assert listcounts.by_status()["all"] == 2
    add_confirmed(1, prefix="gone")  # commits, so the next read counts again
    db.session.execute(sa.delete(Subscriber))
    db.session.rollback()
    assert listcounts.by_status()["all"] == 3


def test_a_new_signup_shows_at_once_on_the_dashboard_and_the_list(app, staff_client, client):
    with app.app_context():
        add_confirmed(5)
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert _card(page, "confirmed subscribers") == 5 and _card(page, "pending confirmation") == 0
    assert 'All <span class="count">5</span>' in staff_client.get("/staff/subscribers").get_data(as_text=True)
    subscribe(client, "new-reader@example.org")  # the signup task writes the pending row
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert _card(page, "pending confirmation") == 1 and _card(page, "confirmed subscribers") == 5
    listing = staff_client.get("/staff/subscribers?status=pending").get_data(as_text=True)
    assert "new-reader@example.org" in listing
    assert 'All <span class="count">6</span>' in listing and 'Pending <span class="count">1</span>' in listing


def test_the_list_size_chart_counts_back_from_the_cached_figure(app, ctx):
    from alerts.reports import dashboard as series

    add_confirmed(4)
    db.session.execute(sa.update(Subscriber).values(confirmed_at=utcnow()))
    db.session.commit()
    assert series.list_size().values[-1] == 4
    one = db.session.scalar(sa.select(Subscriber).limit(1))
    one.status, one.unsubscribed_at = "unsubscribed", utcnow()
    db.session.commit()
    assert series.list_size().values[-1] == 3 and listcounts.on_list() == 3


def test_figures_of_one_database_are_never_read_for_another(app, ctx):
    prefix = app.extensions["listcounts"]
    assert prefix.startswith("alerts:listcounts:")
    assert listcounts._prefix(sa.create_engine("sqlite:///elsewhere.db")) != prefix


def test_a_draft_page_fetches_its_count_and_only_a_draft_has_one(app, staff_client):
    with app.app_context():
        add_confirmed(7)
        alert_id = make_alert("Count me")
        db.session.commit()
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Counting who it goes to: everyone confirmed" in page and "7 people" not in page
    counted = staff_client.get(f"/staff/alerts/{alert_id}/recipients.json").json
    assert counted["size"] == 7 and counted["words"].startswith("Send to 7 people")
    edit = staff_client.get(f"/staff/alerts/{alert_id}/edit").get_data(as_text=True)
    assert "data-count-now" in edit and "Counting:" in edit
    with app.app_context():
        db.session.execute(sa.text("UPDATE alerts SET state = 'sent'"))
        db.session.commit()
    assert staff_client.get(f"/staff/alerts/{alert_id}/recipients.json").status_code == 409
