"""In a real browser: the compose page's live audience count, and the subscriber's preferences page."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Action, SavedAudience, Signature, Subscriber, SubscriberTopic, utcnow
from tests.helpers import add_confirmed, create_staff, seed_actions, unsubscribe_token_for
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in

pytestmark = pytest.mark.slow


EMAIL = "editor@example.org"
PASSWORD = "a long staff password"
RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"




@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_compose_shows_the_audience_size_live(app, live_server, browser, shots, phone):
    with app.app_context():
        seed_actions()
        emails = add_confirmed(40)
        rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
        for e in emails[:15]:
            db.session.add(Signature(action_id=rikers, email=e, email_key=e, source="action-center"))
        subs = list(db.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)))
        for sid in subs[:10]:
            db.session.add(SubscriberTopic(subscriber_id=sid, topic="mental-health"))
        db.session.add(SavedAudience(name="Not yet signed Rikers", rules={"except_signers_of": [RIKERS]}))
        create_staff(EMAIL, PASSWORD)
        db.session.commit()
    page = browsers.new_page(browser, phone=phone)
    staff_log_in(page, live_server.url, EMAIL, PASSWORD)
    page.goto(live_server.url + "/staff/alerts/new")
    count = page.locator(".audience-count")
    expect(count).to_contain_text("40 people: everyone confirmed")
    page.locator("summary", has_text="By action taken").click()
    page.locator("#except_signers_of").get_by_label(re.compile("Close Rikers")).check()
    expect(count).to_contain_text("25 people: everyone confirmed, except those who signed Call on Mayor")
    page.locator("summary", has_text="By topic").click()
    page.locator("#topics").get_by_label("Detention").check()
    # Chose detention or chose nothing: the 10 who chose only mental health are out (all 10 are signers).
    expect(count).to_contain_text("25 people")
    page.locator("#except_signers_of").get_by_label(re.compile("Close Rikers")).uncheck()
    expect(count).to_contain_text("30 people")
    page.locator("summary", has_text="By when and where they joined").click()
    page.get_by_label("Joined on or after").fill("2099-01-01")
    expect(count).to_contain_text("0 people")
    page.get_by_label("Joined before").fill("2098-01-01")
    expect(count).to_contain_text("joined after must be earlier than joined before")
    page.get_by_label("Joined on or after").fill("")
    page.get_by_label("Joined before").fill("")
    expect(count).to_contain_text("30 people")
    page.get_by_label("Subject", exact=True).fill("Detention: act today")
    page.locator("#except_signers_of").get_by_label(re.compile("Close Rikers")).check()
    expect(count).to_contain_text("25 people")
    page.locator("summary", has_text="By recent engagement").click()
    if phone:  # what the phone shows at the rules: the count stays in view (sticky) as they scroll
        page.locator("#topics").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "compose-audience-390-rules.png"))
    page.evaluate("window.scrollTo(0, 0)")  # the sticky count in its place for the full-page shot
    page.screenshot(path=str(shots / f"compose-audience-{'390' if phone else '1280'}.png"), full_page=True)
    # A saved audience fills the rules in, and the count follows.
    page.locator("#topics").get_by_label("Detention").uncheck()
    page.get_by_label("Start from a saved audience").select_option(label="Not yet signed Rikers")
    expect(count).to_contain_text("25 people")
    page.get_by_role("button", name=re.compile("Save draft")).click()
    expect(page.get_by_text(re.compile("Send to 25 people: everyone confirmed, except those who signed"))
           ).to_be_visible()
    page.get_by_role("link", name=re.compile("Send to 25 people")).click()
    expect(page.get_by_text(re.compile(r"^Send to 25 people: everyone confirmed, except"))).to_be_visible()
    if not phone:
        page.screenshot(path=str(shots / "send-confirm-1280.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_preferences_page_topics_and_pause(app, live_server, browser, shots, phone):
    with app.app_context():
        sub = Subscriber(email="reader@example.org", status="confirmed", confirmed_at=utcnow())
        db.session.add(sub)
        db.session.commit()
        token = unsubscribe_token_for(sub.id)
    page = browsers.new_page(browser, phone=phone)
    page.goto(f"{live_server.url}/unsubscribe/{token}")
    expect(page.get_by_role("button", name="Unsubscribe from everything")).to_be_visible()
    page.screenshot(path=str(shots / f"preferences-{'390' if phone else '1280'}.png"), full_page=True)
    page.get_by_label("Detention").check()
    page.get_by_label("LGBTQ+ youth").check()
    page.get_by_role("button", name="Save my topics").click()
    expect(page.get_by_text("You’ll get alerts about Detention, LGBTQ+ youth")).to_be_visible()
    page.get_by_role("link", name="Back to your email settings").click()
    page.get_by_role("button", name="Pause for a month").click()
    expect(page.get_by_text(re.compile("No alerts until"))).to_be_visible()
    with app.app_context():
        assert db.session.get(Subscriber, sub.id).paused_until is not None
        assert set(db.session.scalars(sa.select(SubscriberTopic.topic))) == {"detention", "lgbtq-youth"}
    page.context.close()


def test_sent_ab_alert_page_and_remind_in_two_clicks(app, live_server, browser, shots, smtp):
    from datetime import timedelta

    from alerts.blasts import abtest
    from alerts.models import AbTest, Alert, Click, Delivery
    from tests.helpers import blasts, make_alert

    with app.app_context():
        add_confirmed(200)
        alert_id = make_alert(subject="Close Rikers now", slugs=[RIKERS])
        abtest.configure(db.session.get(Alert, alert_id), subjects=["Close Rikers now", "Rikers: 2 minutes"],
                         sample_pct=10, wait_minutes=60, seed=3)
        db.session.commit()
        blasts.launch(alert_id)
        for first, last in list(blasts.batch_ranges(alert_id, 500)):
            blasts.send_batch(alert_id, first, last)
        b = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id).where(
            Delivery.alert_id == alert_id, Delivery.variant == 1)).all()
        for d, s in b[:4]:
            db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
        rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
        for d, s in b[:2]:
            sub = db.session.get(Subscriber, s)
            db.session.add(Signature(action_id=rikers, subscriber_id=s, email=sub.email, email_key=sub.email,
                                     source="alert", alert_id=alert_id, delivery_id=d))
        db.session.execute(sa.update(AbTest).values(decide_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        abtest.decide_due()
        for first, last in list(blasts.batch_ranges(alert_id, 500)):
            blasts.send_batch(alert_id, first, last)
        create_staff(EMAIL, PASSWORD)
        db.session.commit()
    page = browsers.new_page(browser)
    staff_log_in(page, live_server.url, EMAIL, PASSWORD)
    page.goto(f"{live_server.url}/staff/alerts/{alert_id}")
    expect(page.get_by_text(re.compile("Variant B won on clicks: 4 of 20 clicked"))).to_be_visible()
    page.screenshot(path=str(shots / "alert-ab-results-1280.png"), full_page=True)
    page.get_by_role("button", name="Draft the reminder").click()  # click one
    # 200 sent, minus the 2 who signed.
    expect(page.get_by_text(re.compile("Send to 198 people: those sent alert"))).to_be_visible()
    page.get_by_role("link", name=re.compile("Send to 198 people")).click()  # click two: the confirmation
    expect(page.get_by_role("heading", name="Send this alert?")).to_be_visible()
    page.context.close()
