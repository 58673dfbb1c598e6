"""Two-factor login in a browser: a grace login sent to set it up, the QR and key, the recovery
codes, then a login's code step, at desktop and phone widths (screenshots to look at)."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.sync_api import expect

from alerts.permissions import Role, at_least
from tests.helpers import create_staff
from tests.plugins import browsers

pytestmark = pytest.mark.slow
STAFF, PASSWORD = "second@example.org", "a long second factor password"


def _shoot(page, shots, name: str) -> None:
    for viewport in (browsers.DESKTOP, browsers.PHONE):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(shots / f"{name}-{viewport['width']}.png"), full_page=True)
    page.set_viewport_size(browsers.DESKTOP)


def _log_in(page, base: str) -> None:
    page.goto(base + "/staff/login")
    page.get_by_label("Email").fill(STAFF)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_setting_up_and_logging_in_with_two_factor(app, live_server, browser, shots, monkeypatch):
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_2FA", at_least(Role.SENDER))
    with app.app_context():
        create_staff(STAFF, PASSWORD)  # the first account: the owner, who must use 2FA
    page = browsers.new_page(browser)
    try:
        _log_in(page, live_server.url)
        expect(page).to_have_url(re.compile(r"/staff/account/2fa$"))  # the grace login, to setup
        expect(page.get_by_text("must use two-factor login")).to_be_visible()
        qr = page.get_by_role("img", name=re.compile("QR code"))
        expect(qr).to_be_visible()
        assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # drawn, from a data: URI
        _shoot(page, shots, "2fa-setup")
        page.goto(live_server.url + "/staff/actions")  # every other page waits for it
        expect(page).to_have_url(re.compile(r"/staff/account/2fa$"))

        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_label("Code from your app").fill("123")
        page.get_by_role("button", name="Turn on two-factor login").click()
        expect(page.locator(".field-error")).to_contain_text("not the one your app shows")
        _shoot(page, shots, "2fa-setup-wrong")
        page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on two-factor login").click()
        codes = page.locator("#codes-text")
        expect(codes).to_be_visible()
        recovery = codes.input_value().split()
        assert len(recovery) == 10
        download = page.get_by_role("link", name="Download as text")
        assert download.get_attribute("download") == "recovery-codes.txt"
        _shoot(page, shots, "2fa-codes")
        page.get_by_role("link", name=re.compile("continue")).click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

        page.get_by_role("button", name="Log out").click()
        _log_in(page, live_server.url)
        expect(page).to_have_url(re.compile(r"/staff/login/2fa$"))
        expect(page.get_by_role("heading", name="Two-factor login")).to_be_visible()
        _shoot(page, shots, "2fa-code")
        page.get_by_label("Code").fill(recovery[0])
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        expect(page.locator(".flash-info")).to_contain_text("9 codes left")
        page.goto(live_server.url + "/staff/account/2fa")
        expect(page.locator("#status")).to_contain_text("9 of 10 recovery codes")
        _shoot(page, shots, "2fa-on")
    finally:
        page.context.close()
