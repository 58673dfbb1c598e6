"""The preferences page and the unsubscribe answer in Spanish, in a real browser at 1280 and 390 px:
a Spanish subscriber's own link opens in Spanish, the language radio group is labelled and
usable, long Spanish words do not push the page sideways, and axe-core finds no violation.
Screenshots of each."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Subscriber, utcnow
from tests.helpers import unsubscribe_token_for
from tests.plugins import browsers
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

WIDTHS = (("1280", False), ("390", True))


def _subscriber(app, email: str, language: str) -> str:
    with app.app_context():
        sub = Subscriber(email=email, status="confirmed", confirmed_at=utcnow(), language=language,
                         paused_until=datetime(2027, 1, 7, 12, 0, tzinfo=UTC))
        db.session.add(sub)
        db.session.commit()
        return f"/unsubscribe/{unsubscribe_token_for(sub.id)}"


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def test_the_preferences_page_in_spanish(app, live_server, browser, shots: Path):
    source = _axe_source()
    for label, phone in WIDTHS:
        path = _subscriber(app, f"ana{label}@example.org", "es")
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(live_server.url + path)
            expect(page.get_by_role("heading", name="Darse de baja", exact=True)).to_be_visible()
            languages = page.get_by_role("group", name="Su idioma")
            expect(languages.get_by_role("radio", name="Español")).to_be_checked()
            expect(languages.get_by_role("radio", name="English")).not_to_be_checked()
            paused = page.get_by_text("Las alertas están en pausa hasta el 7 de enero de 2027.")
            expect(paused).to_be_visible()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"preferences-es-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)

            # The other language saved and shown at once, and back again.
            languages.get_by_role("radio", name="English").check()
            page.get_by_role("button", name="Guardar mi idioma").click()
            expect(page.get_by_role("heading", name="Language saved")).to_be_visible()
            page.get_by_role("link", name="Back to your email settings").click()
            expect(page.get_by_role("radio", name="English")).to_be_checked()
            page.get_by_role("radio", name="Español").check()
            page.get_by_role("button", name="Save my language").click()
            expect(page.get_by_role("heading", name="Idioma guardado")).to_be_visible()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"language-saved-es-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)
        finally:
            page.context.close()


def test_unsubscribing_in_spanish(app, live_server, browser, shots: Path):
    source = _axe_source()
    for label, phone in WIDTHS:
        path = _subscriber(app, f"luis{label}@example.org", "es")
        page = browsers.new_page(browser, phone=phone)
        try:
            page.goto(live_server.url + path)
            page.get_by_role("button", name="Darse de baja de todo").click()
            expect(page.get_by_role("heading", name="Se ha dado de baja")).to_be_visible()
            expect(page.get_by_role("link", name="Volver a suscribirse")).to_be_visible()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"unsubscribed-es-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)
            # The link again: already unsubscribed, still in Spanish.
            page.goto(live_server.url + path)
            expect(page.get_by_text("Ya se dio de baja")).to_be_visible()
            page.wait_for_load_state("load")
            page.screenshot(path=shots / f"unsubscribe-again-es-{label}.png", full_page=True)
            assert axe_violations(page, source) == []
            _fits(page)
        finally:
            page.context.close()
