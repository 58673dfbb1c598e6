"""The emails a Spanish reader gets, as a mail program shows them, at a desktop's and a phone's
width: the confirmation and the welcome as sent (read back at the SMTP server), and an alert
with its Spanish version. Long Spanish words must not push anything past the edge."""

from __future__ import annotations

import pytest

from alerts.blasts import content
from alerts.extensions import db
from alerts.models import Alert
from tests.helpers import save_alert, seed_actions
from tests.plugins.browsers import new_page
from tests.test_i18n_emails import _parts, _send, _subscriber

pytestmark = pytest.mark.slow

SPANISH_ALERT = {"subject": "Hola {first_name|amistad}: actúe hoy por la niñez inmigrante",
                 "preheader": "Dos minutos que importan",
                 "intro_md": "Gracias por **defender** a niñas, niños y jóvenes. La detención no es lugar "
                             "para la infancia: firme hoy y compártalo con sus contactos."}


def _fits(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_the_spanish_emails_read_well_at_both_widths(app, smtp, browser, shots, phone):
    width = "390" if phone else "1280"
    with app.app_context():
        seed_actions()
        pending = _subscriber("pendiente@example.org", "pending", "es")
        confirmed = _subscriber("bienvenida@example.org", "confirmed", "es")
        alert = save_alert(None, subject="Dear {first_name|friend}, act today",
                           intro_md="Thank you for **standing up**.", preheader="Two minutes",
                           translations={"es": SPANISH_ALERT})
        db.session.commit()
        alert_html = content.preview(db.session.get_one(Alert, alert.id), lang="es").html
    sent = {name: _parts(_send(app, smtp, name, sid).message)[1]
            for name, sid in (("confirmation", pending), ("welcome", confirmed))}
    page = new_page(browser, phone=phone)
    try:
        for name, html, words in (("confirmation", sent["confirmation"], "Confirme su suscripción"),
                                  ("welcome", sent["welcome"], "Le damos la bienvenida"),
                                  ("alert", alert_html, "Hola Ana: actúe hoy")):
            page.set_content(html)
            assert words in page.inner_text("body"), name
            assert page.evaluate("document.documentElement.lang") == "es", name
            assert _fits(page), f"the {name} email runs past the edge at {width} px"
            page.screenshot(path=str(shots / f"email-{name}-es-{width}.png"), full_page=True)
    finally:
        page.context.close()
