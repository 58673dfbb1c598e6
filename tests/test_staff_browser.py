"""The staff side in a real browser: log in, compose, preview, test, send, watch it finish."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Alert
from tests.helpers import SEED_ACTIONS, add_confirmed, blasts, create_staff, make_alert, seed_actions
from tests.plugins.browsers import staff_log_in

pytestmark = pytest.mark.slow


EMAIL = "editor@example.org"
PASSWORD = "a long staff password"
SUBSCRIBERS = 30



def test_compose_preview_send_and_watch_progress(
    app, live_server, celery_worker, smtp, browser_page, monkeypatch, shots
):
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        seed_actions()
        add_confirmed(SUBSCRIBERS)
        create_staff(EMAIL, PASSWORD)

    def slow_rcpt(address):
        # A slow relay (about 6 s for the blast), so the page is seen while it is sending.
        time.sleep(0.2)
        return None

    page = browser_page
    base = live_server.url
    staff_log_in(page, base, EMAIL, PASSWORD, via="/staff/")
    expect(page.locator(".stat-card").first).to_contain_text(f"{SUBSCRIBERS}")

    # Compose: every open action is ticked by default.
    page.get_by_role("link", name="Compose an alert").first.click()
    expect(page.get_by_role("heading", name="Compose an alert")).to_be_visible()
    boxes = page.locator('input[name="actions"]')
    expect(boxes).to_have_count(len(SEED_ACTIONS))
    for i in range(len(SEED_ACTIONS)):
        expect(boxes.nth(i)).to_be_checked()
    page.get_by_label("Subject", exact=True).fill("Rikers must close: tell Mayor Adams today")
    page.get_by_label("Preheader", exact=True).fill("Two minutes that matter for kids in New York")
    page.get_by_label("Intro (Markdown)").fill(
        "Friends,\n\nThe law says Rikers must close. **Your signature** tells the Mayor we are "
        "watching.\n\n<script>alert('no')</script>\n\n- Sign the petition\n- Share it with a friend"
    )
    page.locator("input[name=actions][value=sign-the-healthy-kids-healthy-minds-pledge]").uncheck()
    page.screenshot(path=str(shots / "staff-compose.png"), full_page=True)
    page.get_by_role("button", name="Save draft and preview").click()

    # The draft's page: HTML preview in a frame, sanitised; the text version one click away.
    expect(page.get_by_role("heading", name="Rikers must close: tell Mayor Adams today")).to_be_visible()
    expect(page.get_by_text("Draft saved.")).to_be_visible()
    preview = page.frame_locator('iframe[name="preview-frame"]')
    expect(preview.get_by_text("Your signature")).to_be_visible()
    expect(preview.locator("strong", has_text="Your signature")).to_have_count(1)
    expect(preview.locator("script")).to_have_count(0)
    expect(preview.get_by_text(SEED_ACTIONS[0][0]).first).to_be_visible()
    expect(preview.get_by_text("Sign the Healthy Kids Healthy Minds Pledge")).to_have_count(0)
    page.locator(".tabs").get_by_role("link", name="Text", exact=True).click()
    expect(preview.get_by_text("Subject: Rikers must close: tell Mayor Adams today")).to_be_visible()
    page.locator(".tabs").get_by_role("link", name="HTML", exact=True).click()
    expect(preview.get_by_text("Your signature")).to_be_visible()

    # A test to the logged-in staff address (the default).
    expect(page.get_by_label("Send a test to")).to_have_value(EMAIL)
    page.get_by_role("button", name="Send a test").click()
    expect(page.get_by_text(f"Test sent to {EMAIL}")).to_be_visible()
    expect(preview.get_by_text("Your signature")).to_be_visible()
    page.screenshot(path=str(shots / "staff-draft.png"), full_page=True)
    (test_message,) = smtp.handler.wait_for(1, timeout=10)
    assert test_message.message["Subject"] == "[TEST] Rikers must close: tell Mayor Adams today"

    # Send, through the confirmation step.
    smtp.handler.rcpt_reply = slow_rcpt
    page.get_by_role("link", name=f"Send to {SUBSCRIBERS} people").click()
    expect(page.get_by_role("heading", name="Send this alert?")).to_be_visible()
    expect(page.get_by_text(f"Send to {SUBSCRIBERS} people: everyone confirmed")).to_be_visible()
    send = page.get_by_role("button", name=f"Send to {SUBSCRIBERS} people now")
    send.click()
    expect(page.get_by_text("Tick the box to confirm.").first).to_be_visible()  # nothing sent yet
    page.get_by_label("I have checked the preview and the test email").check()
    page.screenshot(path=str(shots / "staff-confirm.png"), full_page=True)
    page.get_by_role("button", name=f"Send to {SUBSCRIBERS} people now").click()

    # The alert's page follows the blast live to the end.
    panel = page.locator("#progress")
    expect(panel).to_be_visible()
    expect(page.get_by_text(f"Sending to {SUBSCRIBERS} subscribers.")).to_be_visible()
    expect(panel).to_have_attribute("data-state", "sending")
    expect(panel.locator('[data-field="live"]')).to_have_text("Updates every second.")
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    # The numbers move without a reload (the poll), then the finished page shows 100%.
    percent = panel.locator('[data-field="percent"]')
    expect(percent).to_have_text(re.compile(r"^(?!0$|100$)\d+(\.\d)?$"), timeout=30_000)
    expect(panel.locator('[data-field="sent"]')).not_to_have_text("0")
    page.screenshot(path=str(shots / "staff-alert-sending.png"), full_page=True)
    expect(percent).to_have_text("100", timeout=60_000)
    expect(page.locator(".meta .badge")).to_have_text("sent", timeout=15_000)
    expect(panel.locator('[data-field="sent"]')).to_have_text(str(SUBSCRIBERS))
    expect(panel.locator('[data-field="queued"]')).to_have_text("0")
    expect(panel.locator("progress")).to_have_attribute("value", re.compile(r"^100(\.0)?$"))
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    page.screenshot(path=str(shots / "staff-alert-sent.png"), full_page=True)
    assert len(smtp.handler.wait_for(SUBSCRIBERS + 1, timeout=10)) == SUBSCRIBERS + 1


def test_cancel_asks_first(app, live_server, browser_page):
    with app.app_context():
        add_confirmed(3)
        create_staff(EMAIL, PASSWORD)
        alert_id = make_alert("Paused for a question")
        blasts.start_blast(alert_id)  # no dispatch: nothing is sent
        blasts.pause(alert_id)
    page = browser_page
    staff_log_in(page, live_server.url, EMAIL, PASSWORD, via="/staff/")
    page.goto(f"{live_server.url}/staff/alerts/{alert_id}")
    expect(page.locator(".meta .badge")).to_have_text("paused")

    questions = []

    def answer(dialog, accept):
        questions.append(dialog.message)
        if accept:
            dialog.accept()
        else:
            dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.get_by_role("button", name="Cancel sending").click()
    expect(page.locator(".meta .badge")).to_have_text("paused")
    page.once("dialog", lambda d: answer(d, True))
    page.get_by_role("button", name="Cancel sending").click()
    expect(page.locator(".meta .badge")).to_have_text("cancelled")
    expect(page.get_by_text("Subscribers not yet sent to are skipped")).to_be_visible()
    assert len(questions) == 2 and questions[0].startswith("Cancel this alert?")
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "cancelled"
