"""Every email the service writes itself is in its reader's language: a subscriber's own, a
signer's page's, else the default; each says so in Content-Language, and a template is
compiled once per language, never per recipient."""

from __future__ import annotations

import re

import dkim
import pytest
import sqlalchemy as sa

import alerts.tasks  # noqa: F401 - what a worker imports: every kind registered
from alerts import i18n
from alerts.actions import signing
from alerts.blasts import content
from alerts.extensions import db
from alerts.mail import rendering
from alerts.models import Action, Signature, Subscriber, utcnow
from alerts.subscribers import emails
from tests.helpers import seed_actions
from tests.test_blasts import dkim_key, dns_for  # noqa: F401 - dkim_key is a fixture
from tests.test_signing import sign


def _subscriber(email: str, status: str, language: str | None) -> int:
    sub = Subscriber(email=email, status=status, language=language,
                     confirm_nonce="n" * 32 if status == "pending" else None,
                     confirmed_at=utcnow() if status == "confirmed" else None)
    db.session.add(sub)
    db.session.commit()
    return sub.id


def _signature(email: str) -> int:
    action = db.session.scalars(sa.select(Action).order_by(Action.id)).first()
    signature = Signature(action_id=action.id, email=email, email_key=email, name="Ana", source="direct")
    db.session.add(signature)
    db.session.commit()
    return signature.id


def _send(app, smtp, name: str, *args):
    with app.app_context():
        smtp.handler.clear()
        assert emails.kind(name).send(*args) is True
    (received,) = smtp.handler.wait_for(1, timeout=10)
    return received


def _parts(msg) -> tuple[str, str]:
    """(text, HTML) as a reader's mail program shows them (lines end in a newline)."""
    text, html = (msg.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("plain", "html"))
    return text, html


ORG = "Kids Rights Test Org"
# The footer's unsubscribe link, in the text part and in the HTML part.
SPANISH_FOOTER = (r"Darse de baja: https://\S+/unsubscribe/",
                  r'<a href="https://[^"]+/unsubscribe/[^"]+"[^>]*>darse de baja</a>')
ENGLISH_FOOTER = (r"Unsubscribe: https://\S+/unsubscribe/",
                  r'<a href="https://[^"]+/unsubscribe/[^"]+"[^>]*>Unsubscribe</a>')


@pytest.mark.parametrize("language", ["es", "ES-mx"])
def test_a_spanish_subscriber_gets_the_confirmation_and_the_welcome_in_spanish(language, app, smtp,
                                                                                 dkim_key):  # noqa: F811
    with app.app_context():
        seed_actions()
        pending = _subscriber("pendiente@example.org", "pending", language)
        confirmed = _subscriber("bienvenida@example.org", "confirmed", language)

    confirm = _send(app, smtp, "confirmation", pending)
    assert dkim.verify(confirm.data, dnsfunc=dns_for(dkim_key))
    msg = confirm.message
    assert msg["Content-Language"] == "es"
    assert msg["Subject"] == f"Confirme su suscripción a las alertas de acción de {ORG}"
    text, html = _parts(msg)
    asked = f"Alguien, esperamos que usted, pidió recibir alertas de acción de {ORG} en pendiente@example.org"
    assert asked in text and asked in html
    assert "Confirmar mi suscripción:\nhttps://" in text and ">Confirmar mi suscripción</a>" in html
    assert "caduca en 48 horas" in text and "Recibió este correo porque" in html
    assert '<html lang="es">' in html
    assert re.search(SPANISH_FOOTER[0], text) and re.search(SPANISH_FOOTER[1], html)
    assert not re.search(r"\b(Unsubscribe|Confirm|You got)\b", text + html)

    welcome = _send(app, smtp, "welcome", confirmed)
    assert dkim.verify(welcome.data, dnsfunc=dns_for(dkim_key))
    msg = welcome.message
    assert msg["Content-Language"] == "es"
    assert msg["Subject"] == f"Le damos la bienvenida a las alertas de acción de {ORG}"
    text, html = _parts(msg)
    assert "Gracias por sumarse." in text and "Gracias por sumarse." in html
    assert "Recibió este correo porque confirmó su dirección (bienvenida@example.org)" in text
    assert "Acciones que puede realizar hoy" in html  # the preheader
    assert re.search(SPANISH_FOOTER[0], text) and re.search(SPANISH_FOOTER[1], html)
    assert "You got this email" not in text


def test_a_welcome_staff_wrote_in_english_only_reaches_a_spanish_reader_wholly_in_english(app, smtp):
    from alerts.subscribers import welcome

    with app.app_context():
        seed_actions()
        welcome.save_text("Hello from Kids Org", "Staff's own words.", True)
        db.session.commit()
        sid = _subscriber("marco@example.org", "confirmed", "es")
    msg = _send(app, smtp, "welcome", sid).message
    text, _html = _parts(msg)
    assert msg["Subject"] == "Hello from Kids Org" and "Staff's own words." in text
    # never a mixture: without a Spanish version the fixed parts speak the text's language too
    assert msg["Content-Language"] == "en" and not re.search(SPANISH_FOOTER[0], text)
    assert "Unsubscribe" in text


@pytest.mark.parametrize("language", ["en", None, "fr"])
def test_an_english_or_languageless_subscriber_gets_english(language, app, smtp, dkim_key):  # noqa: F811
    with app.app_context():
        seed_actions()
        pending = _subscriber("pending@example.org", "pending", language)
        confirmed = _subscriber("welcome@example.org", "confirmed", language)
    for name, sid, subject in (("confirmation", pending, f"Confirm your subscription to {ORG} action alerts"),
                               ("welcome", confirmed, f"Welcome to {ORG} action alerts")):
        received = _send(app, smtp, name, sid)
        assert dkim.verify(received.data, dnsfunc=dns_for(dkim_key))
        msg = received.message
        assert msg["Content-Language"] == "en" and msg["Subject"] == subject
        text, html = _parts(msg)
        assert re.search(ENGLISH_FOOTER[0], text) and re.search(ENGLISH_FOOTER[1], html)
        assert '<html lang="en">' in html


def test_a_signature_confirmation_speaks_the_page_else_the_signer_as_a_subscriber(app, smtp,
                                                                                  dkim_key):  # noqa: F811
    with app.app_context():
        seed_actions()
        action = db.session.scalars(sa.select(Action).order_by(Action.id)).first()
        title, titulo = action.title, action.translations["es"]["title"]  # the action in each language
        by_page = _signature("firmante@example.org")
        _subscriber("suscrita@example.org", "confirmed", "es")
        by_subscriber = _signature("suscrita@example.org")
        unknown = _signature("nadie@example.org")

    received = _send(app, smtp, "signature_confirmation", by_page, "es")
    assert dkim.verify(received.data, dnsfunc=dns_for(dkim_key))
    msg = received.message
    assert msg["Content-Language"] == "es"
    assert msg["Subject"] == f"Confirme su firma: {titulo}"
    text, html = _parts(msg)
    assert f"Alguien, esperamos que usted, firmó «{titulo}» con firmante@example.org." in text
    assert ">Confirmar mi firma</a>" in html and "durante 7 días" in text
    assert "Recibió este correo porque esta dirección se escribió en una petición" in text

    assert _send(app, smtp, "signature_confirmation", by_subscriber).message["Content-Language"] == "es"
    english = _send(app, smtp, "signature_confirmation", unknown).message
    assert english["Content-Language"] == "en" and english["Subject"] == f"Confirm your signature: {title}"
    # The page's language wins over the subscriber's own.
    assert _send(app, smtp, "signature_confirmation", by_subscriber, "en").message["Content-Language"] == "en"


def test_signing_on_a_spanish_page_queues_the_confirmation_in_spanish(app, client, ctx, monkeypatch):
    """The page's language (chosen by ?lang=, kept in its cookie) goes with the queued email."""
    from alerts import queueing

    seed_actions()
    action = db.session.scalars(sa.select(Action).order_by(Action.id)).first()
    action.requires_confirmation = True
    db.session.commit()
    queued: list[tuple] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: queued.append((name, args)))
    response = sign(client, action.slug, query={"lang": "es"}, name="Ana", email="ana@example.org")
    assert response.status_code in (302, 303)
    sid = db.session.scalar(sa.select(Signature.id).where(Signature.email == "ana@example.org"))
    assert (signing.tasknames.SEND_SIGNATURE_CONFIRMATION, (sid, "es")) in queued


def test_one_compiled_template_per_language_never_per_recipient(app, smtp, monkeypatch):
    compiles: list[tuple[str, str]] = []
    real = rendering.compile_email

    def counting(env, name, slots, **context):
        compiles.append((name, i18n.current()))
        return real(env, name, slots, **context)

    monkeypatch.setattr(rendering, "compile_email", counting)
    with app.app_context():
        app.extensions["alerts.compiled_emails"] = {}
        ids = [_subscriber(f"reader{n}@example.org", "pending", lang)
               for n, lang in enumerate(("es", "en", "es"))]
    subjects = [_send(app, smtp, "confirmation", sid).message["Subject"] for sid in ids]
    assert sorted(compiles) == [("confirm", "en"), ("confirm", "es")]
    assert subjects[0] == subjects[2] != subjects[1]


def test_the_alert_thanks_a_signer_in_their_language(app):
    action = content.ActionText(1, "Sign the Pledge for Kids", "Why.", "Sign", utcnow())
    other = content.ActionText(2, "Firme la petición por escuelas seguras", "Por qué.", "Firmar", utcnow())
    text = content.AlertText(9, "Subject", "", "Intro.", (action, other))
    with app.app_context():
        with i18n.in_language("es"):
            assert content.alert_context(text, signed=frozenset({2}))["thanks"] == (
                "Gracias por firmar la petición por escuelas seguras. Ahora:")
            assert content.alert_context(text, signed=frozenset({1, 2}))["thanks"] == (
                "Gracias por firmar the Pledge for Kids y la petición por escuelas seguras.")
        assert content.alert_context(text, signed=frozenset({1, 2}))["thanks"] == (
            "You signed the Pledge for Kids and la petición por escuelas seguras, thank you.")


@pytest.mark.commits  # the blast's recorder writes on connections of its own
def test_an_alert_says_its_language(app, smtp):
    from tests.tracking_helpers import send_blast

    with app.app_context():
        smtp.handler.clear()
        send_blast(1, prefix="lang")
    (received,) = smtp.handler.wait_for(1, timeout=10)
    assert received.message["Content-Language"] == "en"


def test_a_signup_is_confirmed_in_the_language_of_its_page(app, smtp, monkeypatch):
    """A new address keeps its page's language; a known one is asked in its latest page's,
    and keeps its own until its owner confirms."""
    from alerts import queueing
    from alerts.subscribers import confirmations, subscriptions

    monkeypatch.setattr(queueing, "_send", lambda name, args: None)
    req = subscriptions.Request(ip="198.51.100.7", user_agent="test")
    with app.app_context():
        known = _subscriber("conocida@example.org", "unsubscribed", "en")
        ids = []
        for email in ("nueva@example.org", "conocida@example.org"):
            attempt = subscriptions.record_attempt(email, req, {"language": "es"})
            db.session.commit()
            ids.append(confirmations.handle_signup(attempt))
            db.session.commit()
        assert ids[1] == known
        assert db.session.get(Subscriber, ids[0]).language == "es"
        assert db.session.get(Subscriber, known).language == "en"
    for sid in ids:
        msg = _send(app, smtp, "confirmation", sid).message
        assert msg["Content-Language"] == "es"
        assert msg["Subject"] == f"Confirme su suscripción a las alertas de acción de {ORG}"
