"""The public signup in a real browser: Action Center -> sign up -> email -> confirm."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Subscriber
from tests.helpers import SEED_ACTIONS, link_in, seed_actions
from tests.plugins import browsers

pytestmark = pytest.mark.slow


SIGNUP_HEADING = "Advocate for Kids"
HONEYPOT_LABEL = "Please leave this field empty"


def _assert_action_center(page) -> None:
    expect(page.get_by_role("heading", name="Detention is No Place for a Child")).to_be_visible()
    titles = page.locator(".actions article h2").all_inner_texts()
    assert titles == [title for title, _cta, _summary in SEED_ACTIONS]
    signup = page.locator("section.signup")
    expect(signup.get_by_role("heading", name=SIGNUP_HEADING)).to_be_visible()
    expect(signup.get_by_label("Email address")).to_be_visible()
    expect(signup.get_by_role("button", name="Sign up")).to_be_visible()


def _assert_honeypot_hidden(page) -> None:
    """In the form (bots fill it), but a person neither sees nor tabs to it."""
    field = page.get_by_label(HONEYPOT_LABEL)
    expect(field).to_have_count(1)
    expect(field).to_have_attribute("tabindex", "-1")
    expect(field).not_to_be_in_viewport()
    expect(page.get_by_text(HONEYPOT_LABEL)).not_to_be_in_viewport()
    box = field.bounding_box()
    assert box is not None and (box["x"] + box["width"] <= 0 or box["width"] * box["height"] <= 1), box
    # Nor is it read out by a screen reader.
    expect(page.locator(".hp")).to_have_attribute("aria-hidden", "true")


def _no_horizontal_overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def _assert_cards_in_column(page) -> None:
    """The action cards keep to the page's column: their edges line up with the signup box."""
    cards, column = page.evaluate(
        """() => {
          const box = document.querySelector("section.signup").getBoundingClientRect();
          const cards = [...document.querySelectorAll(".actions .card")].map(c => {
            const r = c.getBoundingClientRect();
            return [r.left, r.right];
          });
          return [cards, [box.left, box.right]];
        }"""
    )
    assert cards
    for left, right in cards:
        assert column[0] - 0.5 <= left and right <= column[1] + 0.5, (left, right, column)


def test_signup_and_confirm_in_a_browser(
    app, live_server, celery_worker, smtp, browser, browser_page, monkeypatch, tmp_path
):
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        assert seed_actions() == (len(SEED_ACTIONS), 0)

    # The Action Center at a phone's width: all there, nothing wider than the screen.
    for viewport in (browsers.PHONE, browsers.SMALL_PHONE):
        phone = browsers.new_page(browser, phone=True, viewport=viewport)
        try:
            phone.goto(live_server.url + "/")
            _assert_action_center(phone)
            _assert_honeypot_hidden(phone)
            phone.screenshot(path=tmp_path / f"action-center-phone-{viewport['width']}.png", full_page=True)
            scroll_width, inner_width = _no_horizontal_overflow(phone)
            assert inner_width == viewport["width"]
            assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"
            _assert_cards_in_column(phone)
        finally:
            phone.context.close()

    # The whole signup on a desktop.
    page = browser_page
    page.goto(live_server.url + "/")
    _assert_action_center(page)
    _assert_honeypot_hidden(page)
    page.screenshot(path=tmp_path / "action-center-desktop.png", full_page=True)
    scroll_width, inner_width = _no_horizontal_overflow(page)
    assert scroll_width <= inner_width
    _assert_cards_in_column(page)

    page.get_by_label("Email address").fill("grace@example.org")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    messages = smtp.handler.wait_for(1, timeout=20)
    assert len(messages) == 1, "no confirmation email arrived"
    [msg] = messages
    assert msg.rcpt_tos == ["grace@example.org"]
    link = link_in(msg, "/confirm/")
    assert link.startswith(live_server.url + "/confirm/"), link

    page.goto(link)
    expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    page.get_by_role("button", name=re.compile("subscribe me", re.I)).click()
    expect(page.get_by_role("heading", name="You’re subscribed")).to_be_visible()
    page.screenshot(path=tmp_path / "confirmed-desktop.png", full_page=True)

    with app.app_context():
        status = db.session.scalar(
            sa.select(Subscriber.status).where(Subscriber.email == "grace@example.org")
        )
    assert status == "confirmed"
