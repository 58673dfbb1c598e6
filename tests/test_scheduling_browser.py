"""The alert page in a real browser: scheduling in the organisation's zone; the pace while sending."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.mail import pacing, smtp
from alerts.models import Alert
from tests.helpers import add_confirmed, blasts, create_staff, make_alert
from tests.plugins.browsers import new_page, staff_log_in

pytestmark = pytest.mark.slow

EMAIL = "scheduler@example.org"
PASSWORD = "a long staff password"




def test_schedule_unschedule_and_a_bad_time_in_the_browser(app, live_server, browser, monkeypatch, shots):
    monkeypatch.setitem(app.config, "ORG_TIMEZONE", "America/New_York")
    with app.app_context():
        add_confirmed(3)
        alert_id = make_alert("Rikers closes in 2027: hold them to it")
        create_staff(EMAIL, PASSWORD)
    for phone in (False, True):
        page = new_page(browser, phone=phone)
        size = "390" if phone else "1280"
        staff_log_in(page, live_server.url, EMAIL, PASSWORD)
        page.goto(f"{live_server.url}/staff/alerts/{alert_id}")
        expect(page.locator("#schedule")).to_contain_text("America/New_York")
        page.get_by_label("Send at").fill("2001-01-01T09:00")
        page.get_by_role("button", name=re.compile("^(Re)?[Ss]chedule$")).click()
        expect(page.locator("#schedule .field-error")).to_contain_text("is in the past")
        expect(page.get_by_label("Send at")).to_be_focused()  # scrolled to the problem
        page.screenshot(path=str(shots / f"alert-schedule-error-{size}.png"), full_page=False)
        page.get_by_label("Send at").fill("2099-07-04T09:00")
        page.get_by_role("button", name=re.compile("^(Re)?[Ss]chedule$")).click()
        expect(page.locator("#schedule")).to_contain_text(
            "Scheduled for Sat 04 Jul 2099, 09:00 EDT (13:00 UTC)")
        page.locator("#schedule").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"alert-scheduled-{size}.png"), full_page=False)
        page.get_by_role("button", name="Unschedule").click()
        expect(page.locator(".flash, .message").first).to_contain_text("Unscheduled")
        with app.app_context():
            assert db.session.get(Alert, alert_id).scheduled_for is None
        page.context.close()


def test_sending_alert_shows_the_relays_pace_and_why(app, live_server, browser, shots):
    with app.app_context():
        add_confirmed(40)
        alert_id = make_alert("Tell the Council: no more children in adult jails")
        create_staff(EMAIL, PASSWORD)
        blasts.start_blast(alert_id)  # sending, with no worker: it stays there for the page
        db.session.commit()
        relay = smtp.parse_relays(app.config["SMTP_URL"])[0]
        pacing.for_url(app.config["REDIS_URL"]).push_back(
            relay.name, "454 Throttling failure: Maximum sending rate exceeded", None)
    for phone in (False, True):
        page = new_page(browser, phone=phone)
        staff_log_in(page, live_server.url, EMAIL, PASSWORD)
        page.goto(f"{live_server.url}/staff/alerts/{alert_id}")
        expect(page.locator("[data-field=pace]")).to_contain_text("relay asked us to slow down")
        expect(page.locator("[data-field=pace]")).to_contain_text("454 Throttling failure")
        page.screenshot(path=str(shots / f"alert-pace-{'390' if phone else '1280'}.png"), full_page=True)
        page.context.close()
