"""What a new user met, in a real browser at 1280 and 390 px: cards under the sticky header,
errors beside their field, addresses that break only where they must, counters on a phone."""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
from playwright.sync_api import expect

from alerts import suppressions
from alerts.extensions import db
from alerts.testing.inbox import inbox_app
from alerts.testing.mailcatcher import MailCatcher
from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, make_alert
from tests.plugins import browsers
from tests.plugins.parts import LiveServer

pytestmark = pytest.mark.slow

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
WIDTHS = (("1280", False), ("390", True))
SUBJECT = "Close Rikers: two minutes that matter for children, "


def _rect(page, selector: str) -> dict:
    return page.locator(selector).first.evaluate(
        "e => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left,"
        " right: r.right, width: r.width, height: r.height}; }")


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def _settled(page) -> None:
    """After the browser's scroll to the #fragment (and signup.js's focus)."""
    page.wait_for_load_state("load")
    page.wait_for_function("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
                           " .then(() => true)")


def test_after_a_signing_error_the_card_starts_below_the_sticky_header(app, live_server, browser,
                                                                     shots: Path):
    with app.app_context():
        make_alert()
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(f"{live_server.url}/actions/{RIKERS}")
            page.get_by_label("Email address").fill("someone@example.org")
            page.get_by_role("button", name="Sign the Petition").click()
            expect(page.locator("#name-error")).to_contain_text("Please enter your name.")
            _settled(page)
            header = _rect(page, ".site-header-public")
            card = _rect(page, "#sign")
            error = _rect(page, "#name-error")
            page.screenshot(path=shots / f"sign-error-{label}.png")
            assert card["top"] >= header["bottom"], (label, header, card)
            assert header["bottom"] <= error["top"] and error["bottom"] <= page.viewport_size["height"], (
                label, header, error)
            _fits(page)
        finally:
            page.context.close()


def test_the_signup_error_shows_beside_the_field_above_the_button(app, live_server, browser, shots: Path):
    with app.app_context():
        make_alert()
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(f"{live_server.url}/")
            field = page.locator("#advocate").get_by_label("Email address")
            field.fill("someone@localhost")  # the browser's check passes it; ours does not
            page.locator("#advocate").get_by_role("button", name="Sign up").click()
            expect(page.locator("#email-error")).to_be_visible()
            _settled(page)
            header, error = _rect(page, ".site-header-public"), _rect(page, "#email-error")
            button, box = _rect(page, "#advocate button"), _rect(page, "#email")
            page.screenshot(path=shots / f"signup-error-{label}.png")
            assert error["bottom"] <= button["top"] + 1, (label, error, button)  # above the button
            assert abs(error["bottom"] - box["top"]) < 40 or abs(error["top"] - box["bottom"]) < 40, (
                label, error, box)  # beside its field
            assert header["bottom"] <= error["top"] and error["bottom"] <= page.viewport_size["height"], (
                label, header, error)  # in view, not under the header
            _fits(page)
        finally:
            page.context.close()


def test_a_suppressed_address_breaks_mid_word_only_on_a_narrow_screen(app, live_server, browser,
                                                                      shots: Path):
    long = "maria.fernanda.gonzalez@childrensadvocates.example.org"  # no hyphen to break at
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD)
        suppressions.add(long, "complaint", "Reported as spam by the recipient's mail provider, "
                         "with the feedback report attached and the original headers quoted in full")
        db.session.commit()
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            browsers.staff_log_in(page, live_server.url, STAFF_EMAIL, STAFF_PASSWORD)
            page.goto(f"{live_server.url}/staff/suppressions")
            cell = page.locator("td.email", has_text="maria.fernanda")
            expect(cell).to_be_visible()
            page.screenshot(path=shots / f"suppressions-{label}.png", full_page=True)
            lines = cell.evaluate(
                "e => { const r = document.createRange(); r.selectNodeContents(e);"
                " return new Set(Array.from(r.getClientRects()).map(x => Math.round(x.top))).size; }")
            if not phone:
                assert lines == 1, f"the address breaks over {lines} lines at 1280 px"
            _fits(page)
        finally:
            page.context.close()


def test_the_dashboard_counters_are_a_compact_two_by_two_on_a_phone(app, live_server, browser, shots: Path):
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD)
    for label, phone in WIDTHS:
        page = browsers.new_page(browser, phone=phone)
        try:
            browsers.staff_log_in(page, live_server.url, STAFF_EMAIL, STAFF_PASSWORD)
            cards = page.locator(".stat-card")
            expect(cards).to_have_count(4)
            rects = [cards.nth(i).evaluate("e => { const r = e.getBoundingClientRect();"
                                           " return [Math.round(r.left), Math.round(r.top), r.bottom]; }")
                     for i in range(4)]
            page.screenshot(path=shots / f"dashboard-{label}.png")
            columns, rows = {x for x, _y, _b in rects}, {y for _x, y, _b in rects}
            if phone:
                assert (len(columns), len(rows)) == (2, 2), rects
                # Compact: the four take under a quarter of the phone's screen (a column of four: half).
                block = max(b for _x, _y, b in rects) - min(y for _x, y, _b in rects)
                assert block < page.viewport_size["height"] * 0.25, rects
            else:
                assert (len(columns), len(rows)) == (4, 1), rects
            _fits(page)
        finally:
            page.context.close()


def test_the_dev_inbox_gives_a_subject_the_width_of_a_phone(browser, shots: Path):
    catcher = MailCatcher().start()
    try:
        with smtplib.SMTP("127.0.0.1", catcher.port) as conn:
            for n in range(3):
                conn.sendmail("alerts@example.org", [f"a-rather-long-recipient-{n}@example.org"],
                              f"Subject: {SUBJECT}{n}\r\n\r\n"
                              "Hello\r\n".encode())
        catcher.handler.wait_for(3, 10)
        with LiveServer(inbox_app(catcher)) as server:
            for label, phone in WIDTHS:
                page = browsers.new_page(browser, phone=phone)
                try:
                    page.goto(server.url + "/")
                    link = page.get_by_role("link", name=SUBJECT + "1")
                    expect(link).to_be_visible()
                    page.screenshot(path=shots / f"dev-inbox-{label}.png", full_page=True)
                    cell = link.locator("xpath=..").evaluate("e => e.getBoundingClientRect().width")
                    if phone:
                        assert cell >= 0.85 * page.viewport_size["width"] - 32, cell
                    _fits(page)
                finally:
                    page.context.close()
    finally:
        catcher.stop()
