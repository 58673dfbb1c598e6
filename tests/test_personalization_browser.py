"""A draft that greets by name, in a real browser: the help line, and the two readers' previews."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import create_staff, save_alert, seed_actions
from tests.plugins.browsers import new_page, staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

EMAIL = "editor@example.org"
PASSWORD = "a long staff password"


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_the_draft_previews_a_named_and_a_nameless_reader(app, live_server, browser, shots, phone):
    with app.app_context():
        seed_actions()
        create_staff(EMAIL, PASSWORD)
        alert_id = save_alert(None, subject="Dear {first_name|friend}, act now",
                              intro_md="Hello {first_name|friend}: kids in {postal_code|your city} need you.",
                              preheader="", action_slugs=None).id
    page = new_page(browser, phone=phone)
    width = "390" if phone else "1280"
    try:
        base = live_server.url
        staff_log_in(page, base, EMAIL, PASSWORD)
        page.goto(f"{base}/staff/alerts/{alert_id}/edit")
        expect(page.locator("#greeting-help")).to_contain_text("{first_name|friend}")
        expect(page.locator("#greeting-help")).to_contain_text("{postal_code}")
        page.locator("#greeting-help").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"compose-greeting-help-{width}.png"))

        page.goto(f"{base}/staff/alerts/{alert_id}")
        named = page.frame_locator('iframe[title="Email preview as Ana García"]')
        nameless = page.frame_locator('iframe[title="Email preview as a reader without a name"]')
        expect(named.locator("h1")).to_have_text("Dear Ana, act now")
        expect(named.locator(".intro")).to_contain_text("Hello Ana: kids in 10027 need you.")
        expect(nameless.locator("h1")).to_have_text("Dear friend, act now")
        expect(nameless.locator(".intro")).to_contain_text("Hello friend: kids in your city need you.")
        page.locator("#preview-readers").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"alert-preview-readers-{width}.png"), full_page=True)
        frame = page.locator('iframe[title="Email preview as a reader without a name"]')
        frame.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"alert-preview-nameless-{width}.png"))
        assert axe_violations(page, _axe_source()) == []
    finally:
        page.context.close()
