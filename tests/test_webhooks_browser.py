"""The staff webhook pages in a browser at desktop and phone widths (screenshots to look at)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests import webhook_helpers
from tests.helpers import create_staff
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in

pytestmark = pytest.mark.slow
STAFF, PASSWORD = "hooks@example.org", "a long webhook password"


def test_webhook_pages_at_both_widths(app, live_server, browser, shots):
    with app.app_context():
        create_staff(STAFF, PASSWORD)
        endpoint_id = webhook_helpers.endpoint_with_deliveries()
    page = browsers.new_page(browser)
    try:
        staff_log_in(page, live_server.url, STAFF, PASSWORD)
        expect(page.locator("#webhook-notice")).to_be_visible()  # the dashboard's notice
        for path, name in [("/staff/webhooks", "webhooks"), (f"/staff/webhooks/{endpoint_id}", "endpoint")]:
            page.goto(live_server.url + path)
            expect(page.locator("#webhook-notice")).to_be_visible()
            for viewport in (browsers.DESKTOP, browsers.PHONE):
                page.set_viewport_size(viewport)
                page.screenshot(path=str(shots / f"{name}-{viewport['width']}.png"), full_page=True)
        page.get_by_role("button", name="Send test event").click()
        expect(page.locator(".flash-info")).to_contain_text("A test event is on its way")
        expect(page.locator("code", has_text="webhook.test")).to_be_visible()
    finally:
        page.context.close()
