"""The signup forms with the fields staff chose, in a real browser at 1280 and 390 px: drawn with
their labels, a refused value shown by its field with the focus on it, what was typed kept, and
no axe-core violation; the embedded form too. Screenshots of each."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Subscriber
from alerts.subscribers import fields
from tests.helpers import apply_signups, confirm_token_for
from tests.plugins import browsers
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

WIDTHS = (("1280", False), ("390", True))


def _define_fields(app) -> None:
    with app.app_context():
        fields.define("district", "School district", "choice", ["District 1", "District 2", "District 3"],
                      required=True)
        fields.define("interests", "What you care about", "choices", ["Schools", "Health", "Housing"],
                      on_signup=True)
        fields.define("volunteer", "I’d like to volunteer", "checkbox", on_signup=True)
        db.session.commit()


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def test_the_signup_form_with_fields_and_a_refused_postcode(app, live_server, browser, shots: Path):
    source = _axe_source()
    _define_fields(app)
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(f"{live_server.url}/#advocate")
            form = page.locator("#advocate")
            for name in ("Email address", "First name (optional)", "Postal code (optional)",
                         "School district (required)", "I’d like to volunteer (optional)"):
                expect(form.get_by_label(name, exact=True)).to_be_visible()
            expect(form.get_by_role("group", name="What you care about (optional)")).to_be_visible()
            page.wait_for_load_state("load")
            form.screenshot(path=shots / f"signup-fields-{label}.png")
            assert axe_violations(page, source) == []
            _fits(page)

            form.get_by_label("Email address").fill(f"ana{label}@example.org")
            form.get_by_label("First name (optional)").fill("Ana")
            form.get_by_label("Postal code (optional)").fill("10$01")
            form.get_by_label("School district (required)").select_option("District 2")
            form.get_by_label("Health").check()
            form.get_by_role("button", name="Sign up").click()
            error = page.locator("#signup-postal_code-error")
            expect(error).to_contain_text("letters, digits, spaces and hyphens only")
            postal = page.locator("#signup-postal_code")
            expect(postal).to_be_focused()
            expect(postal).to_have_attribute("aria-invalid", "true")
            expect(page.locator("#signup-first_name")).to_have_value("Ana")
            expect(page.locator("#signup-district")).to_have_value("District 2")
            expect(page.get_by_label("Health")).to_be_checked()
            box, message = postal.bounding_box(), error.bounding_box()
            assert 0 <= message["y"] - (box["y"] + box["height"]) < 30, (label, box, message)  # under it
            assert message["y"] + message["height"] <= page.viewport_size["height"], label  # in view
            form.screenshot(path=shots / f"signup-fields-error-{label}.png")
            assert axe_violations(page, source) == []
            _fits(page)

            postal.fill("10001")
            page.locator("#advocate").get_by_role("button", name="Sign up").click()
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        finally:
            page.context.close()
    with app.app_context():
        apply_signups()
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "ana390@example.org"))
        assert (sub.first_name, sub.postal_code) == ("Ana", "10001")
        assert fields.values_for([sub.id])[sub.id] == {"district": ["District 2"], "interests": ["Health"]}


def test_the_embedded_signup_form_with_fields(app, live_server, browser, shots: Path):
    source = _axe_source()
    _define_fields(app)
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(f"{live_server.url}/embed/signup")
            expect(page.get_by_label("School district (required)")).to_be_visible()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"embed-signup-fields-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)
        finally:
            page.context.close()


def test_the_confirmation_page_shows_what_a_signup_typed_for_a_known_address(app, live_server, browser,
                                                                             shots: Path):
    source = _axe_source()
    with app.app_context():
        sub = Subscriber(email="known@example.org", status="pending", confirm_nonce="n" * 32,
                         pending_profile={"first_name": "Ana María", "postal_code": "10001"})
        db.session.add(sub)
        db.session.commit()
        path = f"/confirm/{confirm_token_for(sub.id, sub.confirm_nonce)}"
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(live_server.url + path)
            expect(page.get_by_role("group", name="A signup for your address also gave these details")
                   ).to_contain_text("Ana María")
            tick = page.get_by_label("Yes, these are mine: save them with my subscription")
            expect(tick).not_to_be_checked()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"confirm-details-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)
        finally:
            page.context.close()
