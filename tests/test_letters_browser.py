"""A letter taken in a real browser, at 1280 and 390 px: the page, the letter behind "Read the
letter", the thank-you page naming its targets, the letters at the relay, and staff's figures
per target; axe-core finds nothing on any of them."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from alerts.extensions import db
from tests.helpers import create_staff
from tests.plugins import browsers
from tests.test_accessibility_browser import _axe_source, axe_violations
from tests.test_letters import letter_action, rows

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "letters@example.org", "a long staff password"


def _check(page, name: str, shots, source: str) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"{name} scrolls sideways at {inner_width}px"
    assert axe_violations(page, source) == [], name
    page.screenshot(path=shots / f"{name}.png", full_page=True)


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_a_letter_is_written_sent_and_counted_per_target(app, live_server, celery_worker, smtp, browser,
                                                         monkeypatch, shots, phone):
    source = _axe_source()
    width = "390" if phone else "1280"
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        action = letter_action()
        slug, action_id = action.slug, action.id
        create_staff(STAFF, PASSWORD)
    page = browsers.new_page(browser, phone=phone)
    try:
        page.goto(f"{live_server.url}/actions/{slug}")
        expect(page.get_by_text("Your letter goes by email to:")).to_be_visible()
        expect(page.locator(".letter-targets li")).to_have_count(2)
        _check(page, f"letter-page-{width}", shots, source)
        page.get_by_text("Read the letter").click()
        expect(page.get_by_text("Every child deserves a safe and loving home.")).to_be_visible()
        page.get_by_label("Your name").fill("Ana Ruiz")
        page.get_by_label("Email address").fill("ana@example.net")
        page.get_by_label("Add your own words").fill("My niece waited three years for a family.")
        _check(page, f"letter-page-open-{width}", shots, source)
        page.get_by_role("button", name="Send the Letter").click()
        expect(page.get_by_role("heading", name="Thank you: your letter is on its way")).to_be_visible()
        expect(page.locator(".thanks-targets li")).to_have_count(2)
        _check(page, f"letter-thanks-{width}", shots, source)

        celery_worker.wait_idle()
        received = smtp.handler.wait_for(2, timeout=20)
        assert sorted(r.rcpt_tos[0] for r in received) == ["jane.roe@senate.example.gov",
                                                           "john.doe@house.example.gov"]
        assert all(b"My niece waited three years for a family." in r.data for r in received)
        with app.app_context():
            assert [r.status for r in rows()] == ["sent", "sent"]
            db.session.remove()

        browsers.staff_log_in(page, live_server.url, STAFF, PASSWORD)
        page.goto(f"{live_server.url}/staff/actions/{action_id}/signatures")
        figures = page.locator("#letters")
        expect(figures.get_by_role("heading", name="Letters to each target")).to_be_visible()
        for name in ("Jane Roe", "John Doe"):
            row = figures.locator("tr", has_text=name)
            expect(row.locator("td.num").first).to_have_text("1")
            expect(row).to_contain_text(re.compile(r"sent"))
        _check(page, f"letter-staff-{width}", shots, source)
    finally:
        page.context.close()
