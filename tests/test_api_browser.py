"""The API tokens page and the API's reference page in a browser: a token made, shown once,
copied with the button, used, revoked; both pages looked at on a desktop and a phone."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.helpers import create_staff
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in

pytestmark = pytest.mark.slow

NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= window.innerWidth"
EMAIL, PASSWORD = "tokens@example.org", "a long password for tokens"


def _status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_staff_make_copy_use_and_revoke_a_token(app, live_server, browser, shots):
    with app.app_context():
        create_staff(EMAIL, PASSWORD)
    context = browser.new_context(viewport=browsers.DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    try:
        staff_log_in(page, live_server.url, EMAIL, PASSWORD)
        page.get_by_role("link", name="API tokens").click()
        expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
        page.get_by_label("Name").fill("CiviCRM sync")
        page.get_by_label("write").check()
        page.get_by_role("button", name="Make token").click()
        shown = page.get_by_label("The new token")
        expect(shown).to_be_visible()
        token = shown.input_value()
        assert token.startswith("aa_")
        page.get_by_role("button", name="Copy").click()
        expect(page.get_by_role("button", name="Copied")).to_be_visible()
        assert page.evaluate("navigator.clipboard.readText()") == token
        for width, viewport in (("1280", browsers.DESKTOP), ("390", browsers.PHONE)):
            page.set_viewport_size(viewport)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), f"the tokens page scrolls sideways at {width} px"
            page.screenshot(path=str(shots / f"api-tokens-new-{width}.png"), full_page=True)
        page.set_viewport_size(browsers.DESKTOP)

        assert _status(f"{live_server.url}/api/v1/subscribers", token) == 200
        page.goto(f"{live_server.url}/staff/api-tokens")
        row = page.locator("#tokens tbody tr").first
        expect(row).to_contain_text("CiviCRM sync")
        expect(row).to_contain_text("read write")
        assert token not in page.content()  # shown once, never again
        page.once("dialog", lambda dialog: dialog.accept())
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator(".flash")).to_contain_text("revoked")
        assert _status(f"{live_server.url}/api/v1/subscribers", token) == 401

        page.goto(f"{live_server.url}/api/v1/docs")
        expect(page.get_by_role("heading", name="POST /api/v1/subscribers", exact=True)).to_be_visible()
        for width, viewport in (("1280", browsers.DESKTOP), ("390", browsers.PHONE)):
            page.set_viewport_size(viewport)
            assert page.evaluate(NO_SIDEWAYS_SCROLL), f"the API reference scrolls sideways at {width} px"
            page.screenshot(path=str(shots / f"api-docs-{width}.png"))
            page.locator("article.api-op").first.screenshot(path=str(shots / f"api-docs-table-{width}.png"))
    finally:
        context.close()
