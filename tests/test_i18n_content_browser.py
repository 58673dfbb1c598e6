"""The Spanish version in a real browser: the compose page's section, and the report by language."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Action, Alert, Delivery, Signature, Subscriber, utcnow
from tests.helpers import create_staff, save_alert, seed_actions
from tests.plugins.browsers import new_page, staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

EMAIL = "editor@example.org"
PASSWORD = "a long staff password"


def _sent_alert() -> int:
    """A sent alert: 6 English readers (2 signed), 4 Spanish readers (1 signed); the seed's
    actions without their Spanish versions, so that the page has something missing to say."""
    seed_actions()
    for a in db.session.scalars(sa.select(Action)):
        a.translations = None
    alert = save_alert(None, subject="Act now for kids", intro_md="Thank you.", preheader="",
                       action_slugs=None, translations={"es": {"subject": "Actúe ahora por la niñez"}})
    alert.state, alert.started_at = "sent", utcnow()
    db.session.execute(sa.insert(Subscriber), [
        {"email": f"r{i}@example.org", "status": "confirmed", "language": "es" if i < 4 else None}
        for i in range(10)])
    subs = db.session.execute(sa.select(Subscriber.id, Subscriber.email).order_by(Subscriber.id)).all()
    db.session.execute(sa.insert(Delivery), [
        {"alert_id": alert.id, "subscriber_id": s.id, "status": "sent", "sent_at": utcnow()} for s in subs])
    deliveries = dict(db.session.execute(sa.select(Delivery.subscriber_id, Delivery.id)).all())
    action = alert.actions[0]
    for s in (subs[0], subs[5], subs[6]):
        db.session.add(Signature(action_id=action.id, email=s.email, email_key=s.email, source="alert",
                                 alert_id=alert.id, delivery_id=deliveries[s.id], subscriber_id=s.id))
    db.session.commit()
    return alert.id


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_the_spanish_section_and_the_report_by_language(app, live_server, browser, shots, phone):
    with app.app_context():
        create_staff(EMAIL, PASSWORD)
        alert_id = _sent_alert()
        spanish = {"subject": "Hola {first_name|amistad}: actúe ahora", "preheader": "Dos minutos",
                   "intro_md": "Gracias por **defender** a la niñez."}
        draft_id = save_alert(None, subject="Dear {first_name|friend}, act now", intro_md="Hello.",
                              preheader="Two minutes", action_slugs=None, translations={"es": spanish}).id
        assert db.session.get(Alert, draft_id) is not None
    page = new_page(browser, phone=phone)
    width = "390" if phone else "1280"
    try:
        base = live_server.url
        staff_log_in(page, base, EMAIL, PASSWORD)
        page.goto(f"{base}/staff/alerts/{draft_id}/edit")
        section = page.locator("#spanish")
        expect(section.locator("legend")).to_have_text("Spanish version (optional)")
        expect(page.locator("#subject_es")).to_have_value("Hola {first_name|amistad}: actúe ahora")
        expect(section.locator("[data-field=untranslated-actions]")).to_contain_text(
            "7 of its actions have no Spanish version yet")
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"compose-spanish-{width}.png"))
        page.locator("#by-language summary").click()
        page.locator("#by-language").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"compose-by-language-{width}.png"))
        assert axe_violations(page, _axe_source()) == []

        page.goto(f"{base}/staff/alerts/{alert_id}/report")
        table = page.locator("#by-language table")
        expect(table.locator("tr[data-language=es] td").nth(0)).to_have_text("Spanish")
        expect(table.locator("tr[data-language=es] td").nth(1)).to_have_text("4")
        expect(table.locator("tr[data-language=es] td").nth(4)).to_contain_text("25")
        expect(table.locator("tr[data-language=en] td").nth(1)).to_have_text("6")
        expect(table.locator("tr[data-language=en] td").nth(4)).to_contain_text("33.3")
        page.locator("#by-language").scroll_into_view_if_needed()
        page.screenshot(path=str(shots / f"report-by-language-{width}.png"))
        assert axe_violations(page, _axe_source()) == []
    finally:
        page.context.close()
