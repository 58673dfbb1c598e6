"""A headless Chromium for browser tests: the system's browser, never a downloaded one.

A plugin (tests/conftest.py loads it): `browser_page` is a fresh page (own cookies) in a
desktop-sized window; `browser` is the running Chromium, for tests that want other contexts
too (a phone viewport, a second user); `shots` is where a test saves its screenshots, and
`staff_log_in` signs a page in through the staff login form.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 320, "height": 568}
# Playwright waits this long for an element or a navigation before failing a test.
TIMEOUT_MS = 15_000


def _require_chromium() -> None:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)  # expect() waits as long as actions do (a loaded CI machine)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser, *, phone: bool = False, viewport: dict | None = None):
    """A page in a fresh context: a phone (touch, meta viewport honoured) or a desktop."""
    if phone:
        context = browser.new_context(
            viewport=viewport or PHONE, is_mobile=True, has_touch=True, device_scale_factor=2
        )
    else:
        context = browser.new_context(viewport=viewport or DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    return context.new_page()


@pytest.fixture
def browser_page(browser) -> Iterator[object]:
    page = new_page(browser)
    try:
        yield page
    finally:
        page.context.close()


@pytest.fixture
def shots(tmp_path, request) -> Path:
    """Screenshots go to $SCREENSHOTS/<test module> when SCREENSHOTS is set (to look at
    them), else to the test's tmp dir."""
    root = os.environ.get("SCREENSHOTS")
    target = Path(root) / request.module.__name__.rsplit(".", 1)[-1] if root else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def staff_log_in(page, base: str, email: str, password: str, *, via: str | None = None) -> None:
    """Through the login form, to the dashboard; `via`, a staff page asked for first, must
    send the browser to the login form and back."""
    from playwright.sync_api import expect

    if via is None:
        page.goto(base + "/staff/login")
    else:
        page.goto(base + via)
        expect(page).to_have_url(re.compile(rf"/staff/login\?next={re.escape(via)}$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    # The heading shows before the page's own stylesheets have loaded; a test that measures
    # the layout must see it styled.
    page.wait_for_load_state("load")
