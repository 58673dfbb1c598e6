"""Signing in a real browser: one press from an alert, a visitor from the Action Center, a closed
action, and the staff signature pages; screenshots at 1280 and 390 px."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Action, Signature
from tests.helpers import add_confirmed, blasts, create_staff, make_alert, seed_actions, wait_for_state
from tests.plugins import browsers

pytestmark = pytest.mark.slow


RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
PLEDGE = "sign-the-healthy-kids-healthy-minds-pledge"
STAFF, PASSWORD = "petitions@example.org", "a long staff password"



def _signatures() -> list[Signature]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(Signature).order_by(Signature.id)))


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def _both_widths(browser, url: str, name: str, shots: Path, check=None) -> None:
    """Open `url` at 1280 px and on a 390 px phone; screenshot both, nothing sideways."""
    for label, phone in (("1280", False), ("390", True)):
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(url)
            if check:
                check(page)
            _fits(page)
            page.screenshot(path=shots / f"{name}-{label}.png", full_page=True)
        finally:
            page.context.close()


def test_a_subscriber_signs_from_the_alert_in_one_press(
    app, live_server, celery_worker, smtp, browser, browser_page, monkeypatch, shots
):
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        [email] = add_confirmed(1, prefix="reader")
        alert_id = make_alert(subject="Two petitions need you", slugs=[RIKERS, PLEDGE])
        blasts.launch(alert_id)
        assert wait_for_state(alert_id)["state"] == "sent"
    [mail] = smtp.handler.wait_for(1, timeout=20)
    html = mail.message.get_body(("html",)).get_content()
    # Each button's link (tracked through /r/, which keeps the signing reference's query).
    pattern = rf'href="({re.escape(live_server.url)}/(?:r|actions)/[^"]+)"[^>]*>([^<]+)</a>'
    buttons = dict(re.findall(pattern, html))
    by_text = {text.strip(): url.replace("&amp;", "&") for url, text in buttons.items()}
    rikers, pledge = by_text["Sign the Petition"], by_text["Sign the Pledge"]
    assert "?r=" in rikers and rikers.split("?r=")[1] == pledge.split("?r=")[1]

    page = browser_page
    page.goto(rikers)
    expect(page.get_by_text("Signing as r…@example.org")).to_be_visible()
    assert email not in page.content()
    _both_widths(browser, rikers, "action-from-alert", shots)
    page.get_by_label("Your name").fill("Rea Der")
    page.get_by_role("button", name="Sign the Petition").click()
    expect(page.get_by_role("heading", name="Thank you for signing")).to_be_visible()

    # The second action from the same email: the name is known, so it is one press.
    page.goto(pledge)
    expect(page.get_by_text("Signing as r…@example.org")).to_be_visible()
    expect(page.get_by_label("Your name")).to_have_count(0)
    _both_widths(browser, pledge, "action-one-press", shots)
    page.get_by_role("button", name="Sign the Pledge").click()
    expect(page.get_by_role("heading", name="Thank you for signing")).to_be_visible()

    with app.app_context():
        rows = _signatures()
        assert [(r.email, r.name, r.source, r.alert_id) for r in rows] == [
            (email, "Rea Der", "alert", alert_id), (email, "Rea Der", "alert", alert_id)]
        assert all(r.delivery_id is not None and r.confirmed_at is not None for r in rows)


def test_a_visitor_signs_from_the_action_center(app, live_server, browser, browser_page, shots):
    with app.app_context():
        seed_actions()
    page = browser_page
    page.goto(live_server.url + "/")
    card = page.locator(".actions article", has_text="Close Rikers Island")
    card.get_by_role("link", name="Sign the Petition").click()
    expect(page.get_by_role("heading", name=re.compile("Close Rikers Island"))).to_be_visible()
    expect(page.get_by_text("To: Mayor Adams")).to_be_visible()
    action_url = page.url
    _both_widths(browser, action_url, "action-page", shots)

    # A mistake first: the form comes back scrolled to the field, which is named and marked.
    for label, mistake_page in (("1280", page), ("390", browsers.new_page(browser, phone=True))):
        if mistake_page is not page:
            mistake_page.goto(action_url)
        mistake_page.get_by_label("Your name").fill("Grace Hopper")
        mistake_page.get_by_label("Email address").fill("grace@")
        mistake_page.get_by_role("button", name="Sign the Petition").click()
        expect(mistake_page.locator("#email-error")).to_be_in_viewport()
        expect(mistake_page.get_by_label("Email address")).to_have_attribute("aria-invalid", "true")
        expect(mistake_page.get_by_label("Your name")).to_have_value("Grace Hopper")
        mistake_page.screenshot(path=shots / f"action-error-{label}.png", full_page=False)
        if mistake_page is not page:
            mistake_page.context.close()

    page.get_by_label("Email address").fill("grace@example.org")
    page.get_by_role("button", name="Sign the Petition").click()
    expect(page.get_by_role("heading", name="Thank you for signing")).to_be_visible()
    expect(page.get_by_role("link", name="WhatsApp")).to_be_visible()
    expect(page.get_by_role("heading", name="Next: take another action")).to_be_visible()
    _both_widths(browser, page.url, "thank-you", shots)
    page.goto(live_server.url + f"/actions/{RIKERS}")
    expect(page.locator(".tally-count strong")).to_have_text("1")
    with app.app_context():
        [row] = _signatures()
        assert (row.email, row.name, row.source) == ("grace@example.org", "Grace Hopper", "action-center")


def test_a_closed_action_refuses(app, live_server, browser, browser_page, shots):
    with app.app_context():
        seed_actions()
    page = browser_page
    page.goto(live_server.url + f"/actions/{RIKERS}")
    page.get_by_label("Your name").fill("Too Late")
    page.get_by_label("Email address").fill("late@example.org")
    with app.app_context():
        db.session.execute(sa.update(Action).where(Action.slug == RIKERS).values(is_open=False))
        db.session.commit()
    page.get_by_role("button", name="Sign the Petition").click()
    expect(page.get_by_role("heading", name="This petition has closed")).to_be_visible()
    expect(page.get_by_role("button", name="Sign the Petition")).to_have_count(0)
    _both_widths(browser, live_server.url + f"/actions/{RIKERS}", "action-closed", shots)
    with app.app_context():
        assert _signatures() == []


def test_staff_signature_pages(app, live_server, browser, shots):
    from datetime import UTC, datetime, timedelta

    with app.app_context():
        seed_actions()
        create_staff(STAFF, PASSWORD)
        action = db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))
        action.goal = 100
        action_id = action.id
        now = datetime.now(UTC)
        sources = ("alert", "alert", "action-center", "share", "direct")
        for i in range(73):
            at = now - timedelta(days=i % 9, hours=i)
            db.session.add(Signature(action_id=action_id, email=f"signer{i}@example.org",
                                     email_key=f"signer{i}@example.org", name=f"Signer Number {i}",
                                     postal_code=f"100{i:02d}", source=sources[i % 5], created_at=at,
                                     confirmed_at=at))
        db.session.commit()
    for label, phone in (("1280", False), ("390", True)):
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(live_server.url + "/staff/login")
            page.get_by_label("Email").fill(STAFF)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Log in").click()
            page.goto(live_server.url + f"/staff/actions/{action_id}/signatures")
            expect(page.get_by_role("heading", name="By source")).to_be_visible()
            expect(page.locator(".tally-count strong")).to_have_text("73")
            _fits(page)
            page.screenshot(path=shots / f"staff-signatures-{label}.png", full_page=True)
            page.locator("#list").scroll_into_view_if_needed()
            page.screenshot(path=shots / f"staff-signatures-list-{label}.png")
            page.goto(live_server.url + "/staff/actions")
            _fits(page)
            page.screenshot(path=shots / f"staff-actions-{label}.png", full_page=True)
            page.goto(live_server.url + f"/staff/actions/{action_id}/edit")
            expect(page.get_by_label("Goal (optional)")).to_have_value("100")
            _fits(page)
            page.screenshot(path=shots / f"staff-action-edit-{label}.png", full_page=True)
        finally:
            page.context.close()
