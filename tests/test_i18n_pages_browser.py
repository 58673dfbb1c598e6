"""The Action Center and an action page in Spanish in a real browser, at 1280 and 390 px: the
switch is reachable by keyboard and says which language is on, nothing runs off the page,
and axe-core finds no WCAG 2.1 A/AA violation. Screenshots to look at."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import seed_actions
from tests.plugins import browsers
from tests.test_accessibility_browser import _axe_source, axe_violations
from tests.test_signing import PLEDGE

pytestmark = pytest.mark.slow


def _overflow(page) -> list[str]:
    """Elements whose right edge runs past the window (a long word that did not break)."""
    return page.evaluate(
        """() => [...document.querySelectorAll("body *")].filter(e => {
             const r = e.getBoundingClientRect();
             return r.width > 0 && r.right > window.innerWidth + 1 && !e.closest(".hp, .skip-link");
           }).map(e => e.tagName + "." + e.className + ": " + (e.textContent || "").trim().slice(0, 40))"""
    )


def test_spanish_pages_at_both_widths(app, live_server, browser, shots):
    with app.app_context():
        seed_actions()
    axe = _axe_source()
    for viewport, phone in ((browsers.DESKTOP, False), (browsers.PHONE, True)):
        page = browsers.new_page(browser, phone=phone, viewport=viewport)
        try:
            width = viewport["width"]
            page.goto(live_server.url + "/?lang=es")
            expect(page.locator("html")).to_have_attribute("lang", "es")
            expect(page.get_by_role("heading", name="Centro de Acción", exact=True)).to_be_visible()
            switch = page.get_by_role("navigation", name="Idioma")
            expect(switch.get_by_role("link", name="Español")).to_have_attribute("aria-current", "true")
            expect(switch.get_by_role("link", name="English")).not_to_have_attribute("aria-current", "true")
            assert _overflow(page) == [], _overflow(page)
            assert axe_violations(page, axe) == []
            page.screenshot(path=shots / f"action-center-es-{width}.png", full_page=True)
            page.screenshot(path=shots / f"action-center-es-{width}-top.png")
            page.locator("section.signup").screenshot(path=shots / f"signup-es-{width}.png")

            page.goto(f"{live_server.url}/actions/{PLEDGE}")  # the cookie keeps Spanish
            expect(page.locator("html")).to_have_attribute("lang", "es")
            expect(page.get_by_role("button", name="Firmar el compromiso")).to_be_visible()
            expect(page.get_by_label("Su nombre")).to_be_visible()
            assert _overflow(page) == [], _overflow(page)
            assert axe_violations(page, axe) == []
            page.screenshot(path=shots / f"action-es-{width}.png", full_page=True)
            page.screenshot(path=shots / f"action-es-{width}-top.png")

            # A bad postcode: the Spanish message next to the field, and still nothing runs off.
            page.get_by_label("Su nombre").fill("Lucía Fernández")
            page.get_by_label("Correo electrónico").fill(f"lucia{width}@example.org")
            page.get_by_label("Código postal").fill("10$01")
            page.get_by_role("button", name="Firmar el compromiso").click()
            expect(page.locator("#postal_code-error")).to_have_text(
                "El código postal solo puede tener letras, números, espacios y guiones.")
            assert _overflow(page) == [], _overflow(page)
            assert axe_violations(page, axe) == []
            page.screenshot(path=shots / f"action-es-error-{width}.png", full_page=True)
            page.locator("#sign").screenshot(path=shots / f"action-es-error-{width}-form.png")

            # The embedded signup form in Spanish, as a frame shows it.
            page.goto(live_server.url + "/embed/signup?lang=es")
            expect(page.locator("html")).to_have_attribute("lang", "es")
            expect(page.get_by_role("button", name="Suscribirme")).to_be_visible()
            assert _overflow(page) == [], _overflow(page)
            assert axe_violations(page, axe) == []
            page.screenshot(path=shots / f"embed-signup-es-{width}.png", full_page=True)

            # The keyboard: the skip link first, then the switch; Enter on English switches.
            page.goto(live_server.url + "/")
            page.keyboard.press("Tab")
            expect(page.get_by_role("link", name="Saltar al contenido")).to_be_focused()
            page.keyboard.press("Tab")
            english = page.get_by_role("link", name="English")
            expect(english).to_be_focused()
            page.keyboard.press("Enter")
            expect(page.locator("html")).to_have_attribute("lang", "en")
            expect(page.get_by_role("heading", name="Action Center", exact=True)).to_be_visible()
        finally:
            page.context.close()
