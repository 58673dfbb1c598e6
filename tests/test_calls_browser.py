"""A call campaign in a real browser: a caller on a 390 px phone sees the numbers as big tel:
buttons, logs how the call went, reaches the thank-you page, and staff see it counted; the
pages have no axe violations and are screenshotted at 1280 and 390 px."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.actions import save, targets
from alerts.extensions import db
from alerts.models import Action, CallLog
from tests.helpers import create_staff
from tests.plugins.browsers import new_page, staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "calls@example.org", "a long staff password"
SLUG = "call-the-governor"


def _make_call() -> int:
    action = save(None, title="Call the Governor: Fund School Counsellors", slug=SLUG,
                  summary="Every school needs a counsellor. Two minutes on the phone can make it happen.",
                  call_to_action="Make the Call", kind="call", url=None, is_open=True,
                  call_script="Hello, my name is … and I live in your district.\n\n"
                              "I’m calling to ask the Governor to fund a counsellor in every school.")
    db.session.flush()
    targets.set_targets(action, [targets.parse(line, "call") for line in (
        "Gov. Ana Pérez, Governor tel:+12025550143",
        "Sen. Bo Lee, State Senator tel:+12125550100",
        "Not Yet Known, Assembly Member tel:+12125550101 [placeholder]",
    )])
    db.session.commit()
    return action.id


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def test_a_call_logged_from_a_phone_counts(app, live_server, browser, shots):
    with app.app_context():
        action_id = _make_call()
        create_staff(STAFF, PASSWORD)
    base = live_server.url
    source = _axe_source()
    url = f"{base}/actions/{SLUG}"

    # The page at 1280 px: screenshot and axe.
    desk = new_page(browser)
    try:
        desk.goto(url)
        expect(desk.get_by_role("link", name="Call Gov. Ana Pérez: (202) 555-0143")).to_be_visible()
        _fits(desk)
        desk.screenshot(path=str(shots / "call-page-1280.png"), full_page=True)
        assert axe_violations(desk, source) == []
    finally:
        desk.context.close()

    phone = new_page(browser, phone=True)
    try:
        phone.goto(url)
        governor = phone.get_by_role("link", name="Call Gov. Ana Pérez: (202) 555-0143")
        expect(governor).to_have_attribute("href", "tel:+12025550143")
        expect(phone.get_by_text("Not Yet Known")).to_have_count(0)
        expect(phone.get_by_text("Be the first to call.")).to_be_visible()
        # A big button on a phone: most of the screen's width, and more than a thumb's height.
        box = governor.bounding_box()
        assert box["width"] >= 0.7 * 390 and box["height"] >= 48, box
        _fits(phone)
        phone.screenshot(path=str(shots / "call-page-390.png"), full_page=True)
        assert axe_violations(phone, source) == []

        # Nothing chosen: the form says so, next to the first question, and keeps what was typed.
        phone.get_by_label("Your name").fill("Cal Ler")
        phone.get_by_label("Email address").fill("cal@example.org")
        phone.get_by_role("button", name="Log my call").click()
        expect(phone.get_by_role("alert")).to_have_text("Please tell us how your call went.")
        expect(phone.get_by_label("Email address")).to_have_value("cal@example.org")
        assert axe_violations(phone, source) == []

        groups = phone.get_by_role("group", name="How did it go?")
        expect(groups).to_have_count(2)
        groups.first.get_by_label("I reached someone").check()
        phone.get_by_label("Anything to tell us about the call?").fill("A staffer took my message.")
        phone.get_by_role("button", name="Log my call").click()
        expect(phone.get_by_role("heading", name="Thank you for calling")).to_be_visible()
        expect(phone.locator(".calls-logged")).to_contain_text("1 call has been logged")
        assert phone.url.split("#")[0].endswith(f"/actions/{SLUG}/thanks?called=1")  # nothing personal
        _fits(phone)
        phone.screenshot(path=str(shots / "call-thanks-390.png"), full_page=True)
        assert axe_violations(phone, source) == []
        thanks_url = phone.url
    finally:
        phone.context.close()

    with app.app_context():
        [log] = db.session.scalars(sa.select(CallLog)).all()
        assert (log.outcome, log.note) == ("reached", "A staffer took my message.")
        assert db.session.get(Action, action_id).kind == "call"

    desk = new_page(browser)
    try:
        desk.goto(thanks_url)
        expect(desk.get_by_role("heading", name="Thank you for calling")).to_be_visible()
        desk.screenshot(path=str(shots / "call-thanks-1280.png"), full_page=True)
        assert axe_violations(desk, source) == []
        # Staff see it counted, per target.
        staff_log_in(desk, base, STAFF, PASSWORD)
        desk.goto(f"{base}/staff/actions/{action_id}/signatures")
        row = desk.locator(".call-table tbody tr", has_text="Gov. Ana Pérez")
        expect(row.locator("td").nth(2)).to_have_text("1")  # reached
        expect(row.locator("td").nth(6)).to_have_text("1")  # total
        senator = desk.locator(".call-table tbody tr", has_text="Sen. Bo Lee")
        expect(senator.locator("td").nth(6)).to_have_text("0")
        desk.locator("#calls").scroll_into_view_if_needed()
        desk.screenshot(path=str(shots / "call-staff-figures-1280.png"), full_page=True)
        assert axe_violations(desk, source) == []
        desk.set_viewport_size({"width": 390, "height": 844})
        desk.screenshot(path=str(shots / "call-staff-figures-390.png"), full_page=True)
        assert axe_violations(desk, source) == []
    finally:
        desk.context.close()
