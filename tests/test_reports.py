"""Reports: the dashboard's series against the rows, the staff pages that draw them, an alert's
report page, unsubscribes/bounces/complaints per alert, and one subscriber's history."""

from __future__ import annotations

import collections
import html
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import url_for

from alerts import clickcounts
from alerts.extensions import db
from alerts.models import (
    Action,
    BounceEvent,
    Click,
    ConsentRecord,
    Delivery,
    Signature,
    Subscriber,
    Suppression,
    email_hash,
    utcnow,
)
from alerts.reports import alert_report
from alerts.reports import dashboard as series
from tests.report_helpers import SOURCES, end_of, month_of_activity
from tests.tracking_helpers import TWO, click, links_by_recipient, record_all, send_blast


def test_dashboard_series_match_the_rows(app, ctx):
    month_of_activity()
    days = series.window()
    subs = list(db.session.scalars(sa.select(Subscriber)))
    size = series.list_size(days)
    for day, value in zip(days, size.values, strict=True):
        end = end_of(day)
        expected = sum(1 for s in subs if s.confirmed_at and s.confirmed_at <= end
                       and not (s.unsubscribed_at and s.unsubscribed_at <= end))
        assert value == expected, day
    confirmed = collections.Counter(s.confirmed_at.date() for s in subs if s.confirmed_at)
    assert series.confirmations(days).values == [confirmed.get(d, 0) for d in days]
    unsubs = collections.Counter(
        c.at.date() for c in db.session.scalars(sa.select(ConsentRecord))
        if c.event.startswith("unsubscribe"))
    assert series.unsubscribes(days).values == [unsubs.get(d, 0) for d in days]
    assert sum(series.unsubscribes(days).values) == 7
    by_source = collections.Counter(
        c.source for c in db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.event == "signup")))
    assert dict(series.signups_by_source(days)) == dict(by_source)
    assert {s for s, _ in series.signups_by_source(days)} == set(SOURCES)
    per_action = series.signatures_per_action(days)
    assert len(per_action) == 3
    for action, s in per_action:
        rows = collections.Counter(sig.created_at.date() for sig in db.session.scalars(
            sa.select(Signature).where(Signature.action_id == action.id)))
        assert s.values == [rows.get(d, 0) for d in days]


def test_dashboard_page_draws_the_charts_and_says_the_figures(app, staff_client, client):
    with app.app_context():
        month_of_activity()
        confirmed_now = series.list_size().values[-1]
        total_confirmations = series.confirmations().total
    home = client.get("/staff/").get_data(as_text=True)
    # The dashboard comes without its charts and fetches them; a page without script links to them.
    assert 'data-url="/staff/charts.part"' in home and 'href="/staff/charts"' in home
    assert '<svg class="chart"' not in home
    whole = client.get("/staff/charts").get_data(as_text=True)
    page = client.get("/staff/charts.part").get_data(as_text=True)
    assert page in whole and "<html" not in page
    assert page.count('<svg class="chart"') == 3
    for label in ("Confirmed subscribers at the end of each day", "Confirmations per day",
                  "Unsubscribes per day"):
        assert f'aria-label="{label}"' in page
    assert f"<strong>{confirmed_now:,}</strong> confirmed today" in page
    assert f"<strong>{total_confirmations:,}</strong> in the last 30 days" in page
    assert "Pride march 2026 (paper)" in page
    assert page.count('<svg class="spark"') == 3 and page.count('class="sparklist-title"') == 3
    # The staff CSP allows no inline styles: none in the page, charts included.
    assert " style=" not in page and " style=" not in home
    assert "/static/reports.css" in home and "/static/reports.css" in whole


def test_an_empty_dashboard_says_so(app, staff_client, client):
    page = client.get("/staff/charts.part").get_data(as_text=True)
    assert "No alert has been sent yet." in page and "No signatures in the last 30 days." in page
    assert page.count('<svg class="chart"') == 3


@pytest.mark.commits
def test_report_page_shows_the_alerts_figures(app, staff_client, client, smtp):
    with app.app_context():
        alert_id = send_blast(3, TWO)
        links = links_by_recipient(smtp)
        click(client, links["reader00000@example.org"][1])
        click(client, links["reader00001@example.org"][1])
        click(client, links["reader00002@example.org"][0], method="HEAD")
        record_all()
        data = alert_report.report(alert_id)
    page = client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    assert data["clicks"] == {"unique": 2, "total": 2, "machine": 1}
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "People who clicked 2 66.7% of delivered" in text
    assert "Machine clicks 1" in text
    assert ("Sign the Healthy Kids Healthy Minds Pledge pledge Clicked 2 Signed 0 Click-to-sign 0.0% "
            "2 clicks by people; 0 signed after a click.") in text
    assert " style=" not in page
    alert_page = client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert f"/staff/alerts/{alert_id}/report" in alert_page
    assert client.get("/staff/alerts/4242/report").status_code == 404


@pytest.mark.commits
def test_unsubscribes_bounces_and_complaints_are_counted_per_alert(app, ctx, client, smtp):
    first = send_blast(3, TWO)
    smtp.handler.clear()
    second = send_blast(0, TWO)  # the same three people, a second alert
    deliveries = {(d.alert_id, d.subscriber_id): d for d in db.session.scalars(sa.select(Delivery))}
    subs = {s.email: s for s in db.session.scalars(sa.select(Subscriber))}
    a, b, c = (subs[f"reader0000{i}@example.org"] for i in range(3))
    # a unsubscribed after the second alert; b complained about the first and bounced the second.
    a_second = deliveries[(second, a.id)]
    db.session.add(ConsentRecord(subscriber_id=a.id, event="unsubscribe:one-click",
                                 at=a_second.sent_at + timedelta(minutes=5)))
    for kind, alert_id in (("complaint", first), ("hard", second)):
        db.session.add(BounceEvent(source="smtp", kind=kind, subscriber_id=b.id,
                                   delivery_id=deliveries[(alert_id, b.id)].id, report_key=f"k-{kind}",
                                   outcome="test"))
    db.session.commit()
    one, two = alert_report.report(first), alert_report.report(second)
    assert (one["unsubscribed"], one["complaints"], one["bounced"], one["delivered"]) == (0, 1, 0, 3)
    assert (two["unsubscribed"], two["complaints"], two["bounced"], two["delivered"]) == (1, 0, 1, 2)
    assert c


@pytest.mark.commits
def test_subscriber_history_tells_the_story_and_why_suppressed(app, staff_client, client, smtp):
    with app.app_context():
        alert_id = send_blast(1, TWO)
        sub = db.session.scalar(sa.select(Subscriber))
        sub.consents.append(ConsentRecord(event="signup", at=sub.created_at, source="web-form",
                                          ip="198.51.100.9"))
        db.session.commit()
        urls = links_by_recipient(smtp)["reader00000@example.org"]
        click(client, urls[1], method="HEAD")  # a link checker, before the person
        record_all()
        click(client, urls[0])
        record_all()
        action = db.session.scalar(sa.select(Action).where(Action.slug == TWO[0]))
        delivery = db.session.scalar(sa.select(Delivery))
        db.session.add(Signature(action_id=action.id, subscriber_id=sub.id, email=sub.email,
                                 email_key=sub.email, name="R", source="alert", alert_id=alert_id,
                                 delivery_id=delivery.id))
        sub.status, sub.unsubscribed_at = "unsubscribed", utcnow()
        sub.consents.append(ConsentRecord(event="unsubscribe:complaint", at=utcnow()))
        db.session.add(Suppression(email_hash=email_hash(sub.email), email=sub.email, reason="complaint",
                                   detail="ARF report from example.org"))
        db.session.commit()
        sub_id = sub.id
    page = client.get(f"/staff/subscribers/{sub_id}").get_data(as_text=True)
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    story = ["Signed up", "Received: Act now for kids",
             "A machine (link scanner or prefetch) opened “Sign the Healthy Kids Healthy Minds Pledge” "
             "in Act now for kids (a link checker's HEAD request)",
             "Clicked “Detention is No Place for a Child”",
             "Signed “Detention is No Place for a Child”", "Unsubscribed (marked an alert as spam)",
             "Suppressed: they marked an alert as spam"]
    positions = [text.index(step) for step in story]
    assert positions == sorted(positions), text
    assert "Why no alert reaches this address" in text and "ARF report from example.org" in text


@pytest.mark.commits
def test_report_page_says_when_clicks_are_not_tracked(app, staff_client, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "TRACK_CLICKS", "off")
    with app.app_context():
        alert_id = send_blast(1, TWO)
        assert alert_report.report(alert_id)["track_clicks"] == "off"
    page = client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    assert "Clicks are not tracked" in page


@pytest.mark.commits
def test_click_to_sign_counts_people_and_stays_within_0_and_100_percent(app, staff_client, client, smtp):
    """One person's click and three signatures attributed to the alert (theirs on another action,
    a forwarded link's, one made before the click): 1 of 1 person who clicked then signed."""
    with app.app_context():
        alert_id = send_blast(3, TWO)
        click(client, links_by_recipient(smtp)["reader00000@example.org"][0])
        record_all()
        deliveries = dict(db.session.execute(
            sa.select(Subscriber.email, Delivery.id).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        ).all())
        actions = dict(db.session.execute(sa.select(Action.slug, Action.id)).all())
        clicked_at = db.session.scalar(sa.select(sa.func.min(Click.at)))

        def sign(email: str, slug: str, at) -> None:
            db.session.add(Signature(action_id=actions[slug], email=email, email_key=email, name="S",
                                     source="alert", alert_id=alert_id, delivery_id=deliveries[email],
                                     created_at=at))

        sign("reader00000@example.org", TWO[0], clicked_at + timedelta(minutes=2))  # clicked, then signed
        sign("reader00000@example.org", TWO[1], clicked_at + timedelta(minutes=3))  # never clicked TWO[1]
        sign("reader00001@example.org", TWO[0], clicked_at + timedelta(minutes=4))  # never clicked
        sign("reader00002@example.org", TWO[0], clicked_at - timedelta(minutes=1))
        db.session.commit()
        data = alert_report.report(alert_id)
    assert data["signatures"] == 4 and data["clicks"]["unique"] == 1
    rates = [data["click_to_sign_rate"]] + [a["click_to_sign_rate"] for a in data["by_action"]]
    assert all(r is None or 0 <= r <= 1 for r in rates), rates
    assert data["people_signed_after_click"] == 1
    assert data["click_to_sign_rate"] == 1.0
    first, second = data["by_action"]
    assert (first["unique_clicks"], first["people_signed_after_click"]) == (1, 1)
    assert first["click_to_sign_rate"] == 1.0
    assert (second["unique_clicks"], second["click_to_sign_rate"]) == (0, None)
    page = client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Click-to-sign 100.0% 1 of 1 people who clicked then signed" in text
    assert "300.0%" not in text and "400.0%" not in text
    # Once the per-person rows are folded into counters, who signed after a click is not known.
    with app.app_context():
        clickcounts.fold(Click.alert_id == alert_id)
        db.session.commit()
        folded = alert_report.report(alert_id)
    assert folded["clicks"]["unique"] == 1 and folded["click_to_sign_rate"] is None
    assert folded["by_action"][0]["click_to_sign_rate"] is None
    page = client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    assert "Click-to-sign</dt><dd>—<span class=\"sub\">not known: clicks are not kept per person" in page


@pytest.mark.commits
def test_the_dashboard_funnel_counts_people_who_signed_once_each(app, staff_client, smtp):
    """One reader of a two-reader alert signs two actions: the funnel's Signed is 1 person (50%),
    not 2 signatures (100%), and it can never pass the delivered count."""
    with app.app_context():
        alert_id = send_blast(2, TWO)
        delivery = db.session.scalar(
            sa.select(Delivery.id).join(Subscriber, Delivery.subscriber_id == Subscriber.id)
            .where(Subscriber.email == "reader00000@example.org"))
        for slug in TWO:
            action_id = db.session.scalar(sa.select(Action.id).where(Action.slug == slug))
            db.session.add(Signature(action_id=action_id, email="reader00000@example.org",
                                     email_key="reader00000@example.org", name="S", source="alert",
                                     alert_id=alert_id, delivery_id=delivery))
        db.session.commit()
        [funnel] = [f for f in alert_report.funnels() if f["id"] == alert_id]
    assert (funnel["delivered"], funnel["signed"], funnel["signatures"]) == (2, 1, 2)
    page = staff_client.get(url_for_part(app)).get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Signed 1 50.0%" in text and "100.0%" not in text.split("Signed", 1)[1][:40]


def url_for_part(app) -> str:
    """Where the dashboard fetches its charts (the funnels among them) from."""
    with app.test_request_context():
        return url_for("staff.dashboard_charts_part")
