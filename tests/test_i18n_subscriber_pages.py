"""The pages a subscriber reaches from an email (confirm, unsubscribe, preferences, privacy) and
the error pages, in Spanish: by `?lang=es`, and by the subscriber's own language when the link
is theirs; the one-click answer too; the language changed on the preferences page."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Subscriber, SubscriberTopic, utcnow
from alerts.subscribers.tokens import TEST_SEND_TOKEN
from tests.helpers import confirm_token_for, unsubscribe_token_for
from tests.test_subscriptions import signed_ago

ROOT = Path(__file__).resolve().parent.parent
# <html lang> is written by base.html, with the language switch; until it follows the page's
# language, the assertions on it wait.
HTML_LANG_FOLLOWS = "current_language()" in (ROOT / "templates" / "base.html").read_text(encoding="utf-8")
PAUSED_UNTIL = datetime(2027, 1, 7, 12, 0, tzinfo=UTC)


def _subscriber(app, email: str, *, language: str | None = None, status: str = "confirmed",
                paused_until: datetime | None = None, topics=()) -> tuple[int, str]:
    """A subscriber and the path of their unsubscribe link."""
    with app.app_context():
        sub = Subscriber(email=email, status=status, language=language, paused_until=paused_until,
                         confirmed_at=utcnow() if status == "confirmed" else None)
        db.session.add(sub)
        db.session.flush()
        for t in topics:
            db.session.add(SubscriberTopic(subscriber_id=sub.id, topic=t))
        db.session.commit()
        return sub.id, f"/unsubscribe/{unsubscribe_token_for(sub.id)}"


def _pending(app, email: str, *, language: str | None = None) -> str:
    """The confirmation link of a subscriber who has not confirmed yet."""
    with app.app_context():
        sub = Subscriber(email=email, status="pending", confirm_nonce="n" * 32, language=language)
        db.session.add(sub)
        db.session.commit()
        return f"/confirm/{confirm_token_for(sub.id, sub.confirm_nonce)}"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _text(resp) -> str:
    return resp.get_data(as_text=True)


def _assert_spanish(page: str, *phrases: str) -> None:
    for phrase in phrases:
        assert phrase in page, phrase
    if HTML_LANG_FOLLOWS:
        assert '<html lang="es"' in page


# --- ?lang=es on each page --------------------------------------------------------------------


def test_the_confirmation_pages_in_spanish(app, client):
    path = _pending(app, "c@example.org")
    page = _text(client.get(path + "?lang=es"))
    _assert_spanish(page, "Confirme su suscripción", "¿Solo algunos temas?", "Justicia juvenil",
                    "Sí, quiero suscribirme")
    assert "Confirm your subscription" not in page
    done = client.post(path, data={"topics": ["detention"]})
    assert done.status_code == 200
    _assert_spanish(_text(done), "Su suscripción está activa", "Ver las acciones abiertas")
    again = client.get(path)  # (the cookie from ?lang=es)
    _assert_spanish(_text(again), "Su suscripción ya estaba activa")
    bad = client.post(path.replace("/confirm/", "/confirm/x") + "?lang=es", data={"topics": ["nope"]})
    assert bad.status_code == 400
    _assert_spanish(_text(bad), "Este enlace no es válido", "Volver a suscribirse")


def test_a_wrong_topic_on_the_confirmation_page_is_refused_in_spanish(app, client):
    path = _pending(app, "t@example.org")
    resp = client.post(path + "?lang=es", data={"topics": ["gardening"]})
    assert resp.status_code == 400
    _assert_spanish(_text(resp), "Elija temas de la lista.")


def test_the_unsubscribe_page_and_its_choices_in_spanish(app, client):
    _, path = _subscriber(app, "u@example.org", paused_until=PAUSED_UNTIL)
    page = _text(client.get(path + "?lang=es"))
    _assert_spanish(page, "Darse de baja", "Su idioma", "Guardar mis temas",
                    "Las alertas están en pausa hasta el 7 de enero de 2027.",
                    "Reactivar las alertas ahora", "Darse de baja de todo", "Descargar mis datos",
                    "¿Dejar de recibir alertas de acción en u@example.org?")
    assert "Unsubscribe from everything" not in page and "January" not in page
    csrf = _csrf(page)
    topics = client.post(path + "/topics",
                         data={"topics": ["mental-health", "lgbtq-youth"], "csrf_token": csrf})
    _assert_spanish(_text(topics), "Temas guardados", "Recibirá alertas sobre Jóvenes LGBTQ+, Salud mental")
    resumed = client.post(path + "/resume", data={"csrf_token": csrf})
    _assert_spanish(_text(resumed), "Alertas reactivadas", "Volver a sus preferencias de correo")
    paused = client.post(path + "/pause", data={"csrf_token": csrf})
    _assert_spanish(_text(paused), "Alertas en pausa", "No recibirá alertas hasta el ")
    assert re.search(r"hasta el \d{1,2} de [a-z]+ de \d{4}\.", _text(paused))
    bad = client.post(path + "/topics", data={"topics": ["gardening"], "csrf_token": csrf})
    assert bad.status_code == 400
    _assert_spanish(_text(bad), "tema desconocido: gardening")


def test_the_english_page_keeps_english_dates(app, client):
    _, path = _subscriber(app, "en@example.org", paused_until=PAUSED_UNTIL)
    page = _text(client.get(path + "?lang=en"))
    assert "Alerts are paused until January 7, 2027." in page


def test_unsubscribing_and_the_sample_link_in_spanish(app, client):
    _, path = _subscriber(app, "x@example.org")
    done = client.post(path + "?lang=es")
    _assert_spanish(_text(done), "Se ha dado de baja", "¿Cambió de opinión?", "Borrar mis datos")
    already = _text(client.get(path))
    _assert_spanish(already, "Ya se dio de baja (x@example.org). No recibirá más alertas nuestras.")
    sample = _text(client.get(f"/unsubscribe/{TEST_SEND_TOKEN}?lang=es"))
    _assert_spanish(sample, "Un enlace de baja de muestra", "envío de prueba")
    posted = client.post(f"/unsubscribe/{TEST_SEND_TOKEN}?lang=es")
    assert _text(posted) == "No hay nada que dar de baja: este enlace es de muestra.\n"


def test_the_privacy_pages_in_spanish(app, client):
    sid, path = _subscriber(app, "p@example.org")
    erase = client.get(path + "/erase?lang=es")
    page = _text(erase)
    _assert_spanish(page, "Borre sus datos", "Esto borra lo que guardamos sobre p@example.org",
                    "huella irreversible", "Descargue sus datos")
    erased = client.post(path + "/erase", data={"csrf_token": _csrf(page)})
    assert erased.status_code == 200
    _assert_spanish(_text(erased), "Sus datos se han borrado")
    with app.app_context():
        assert db.session.get(Subscriber, sid) is None
    gone = client.get(path + "/erase")
    assert gone.status_code == 404
    _assert_spanish(_text(gone), "Sus datos ya no existen", "No queda nada que dar de baja")
    forged = client.get("/unsubscribe/not-a-token/data.json")
    assert forged.status_code == 400
    _assert_spanish(_text(forged), "Este enlace no es válido", "Puede que su programa de correo")


# --- the subscriber's own language ------------------------------------------------------------


def test_a_spanish_subscriber_meets_spanish_without_asking(app):
    _, path = _subscriber(app, "es@example.org", language="es")
    browser = app.test_client()
    page = _text(browser.get(path, headers={"Accept-Language": "en-US,en;q=0.9"}))
    _assert_spanish(page, "Darse de baja de todo", "Guardar mis temas")
    assert re.search(r'value="es" checked>\s*<span lang="es">Español</span>', page)
    erase = _text(browser.get(path + "/erase"))
    _assert_spanish(erase, "Borre sus datos")
    # Her confirmation link too, before she has confirmed.
    confirm = _text(app.test_client().get(_pending(app, "new@example.org", language="es")))
    _assert_spanish(confirm, "Confirme su suscripción")
    # An English subscriber's page stays English, whatever another's was.
    _, english = _subscriber(app, "en@example.org", language="en")
    assert "Unsubscribe from everything" in _text(app.test_client().get(english))


def test_an_expired_confirmation_link_is_explained_in_the_signers_language(app, monkeypatch):
    with app.app_context():
        sub = Subscriber(email="late@example.org", status="pending", confirm_nonce="n" * 32, language="es")
        db.session.add(sub)
        db.session.commit()
        sid = sub.id
    token = signed_ago(app, monkeypatch, 48 * 3600 + 5, lambda: confirm_token_for(sid, "n" * 32))
    resp = app.test_client().get(f"/confirm/{token}", headers={"Accept-Language": "en"})
    assert resp.status_code == 410
    _assert_spanish(_text(resp), "Este enlace ha caducado",
                    "Los enlaces de confirmación son válidos durante 48 horas.")
    # A link we did not sign names no one: the browser's language.
    forged = app.test_client().get(f"/confirm/{token[:-2]}xx", headers={"Accept-Language": "en"})
    assert forged.status_code == 400 and "This link isn’t valid" in _text(forged)


def test_lang_and_the_cookie_come_before_the_subscribers_language(app):
    _, path = _subscriber(app, "es@example.org", language="es")
    browser = app.test_client()
    assert "Unsubscribe from everything" in _text(browser.get(path + "?lang=en"))
    assert "Unsubscribe from everything" in _text(browser.get(path))  # the cookie kept it
    # And a subscriber with no language gets the browser's.
    _, none = _subscriber(app, "none@example.org")
    _assert_spanish(_text(app.test_client().get(none, headers={"Accept-Language": "es"})), "Darse de baja")


def test_the_one_click_answer_in_the_subscribers_language(app):
    sid, path = _subscriber(app, "click@example.org", language="es")
    bare = app.test_client(use_cookies=False)
    resp = bare.post(path, data="List-Unsubscribe=One-Click",
                     content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200 and _text(resp) == "Baja realizada.\n"
    assert resp.headers["Content-Language"] == "es"
    with app.app_context():
        assert db.session.get(Subscriber, sid).status == "unsubscribed"
    _, english = _subscriber(app, "en@example.org")
    resp = bare.post(english, data="List-Unsubscribe=One-Click",
                     content_type="application/x-www-form-urlencoded")
    assert _text(resp) == "Unsubscribed.\n" and resp.headers["Content-Language"] == "en"


# --- the language chosen on the preferences page ------------------------------------------------


def test_the_language_chosen_on_the_preferences_page_is_kept_and_used(app, client):
    sid, path = _subscriber(app, "ana@example.org", language="en", topics=["detention"])
    page = _text(client.get(path))
    assert "Your language" in page
    assert re.search(r'value="en" checked>\s*<span lang="en">English</span>', page)
    done = client.post(path + "/topics", data={"language": "es", "csrf_token": _csrf(page)})
    assert done.status_code == 200
    _assert_spanish(_text(done), "Idioma guardado", "le escribiremos en español")
    with app.app_context():
        sub = db.session.get(Subscriber, sid)
        assert sub.language == "es"
        # The topics form was not what was posted: the topics stay.
        assert list(db.session.scalars(sa.select(SubscriberTopic.topic))) == ["detention"]
    # The next page speaks it at once, in this browser and in any other.
    _assert_spanish(_text(client.get(path)), "Darse de baja de todo")
    _assert_spanish(_text(app.test_client().get(path)), "Darse de baja de todo")
    # And back to English from a browser whose cookie says Spanish.
    csrf = _csrf(_text(client.get(path)))
    back = client.post(path + "/topics", data={"language": "en", "csrf_token": csrf})
    assert "Language saved" in _text(back) and "write to you in English" in _text(back)
    assert "Unsubscribe from everything" in _text(client.get(path))


def test_a_language_not_offered_is_refused_by_its_field(app, client):
    sid, path = _subscriber(app, "ana@example.org", language="es")
    page = _text(client.get(path))
    resp = client.post(path + "/topics", data={"language": "fr", "csrf_token": _csrf(page)})
    assert resp.status_code == 400
    body = _text(resp)
    assert re.search(r'id="language-error" role="alert">Elija uno de los idiomas de la lista\.<', body)
    assert body.index("language-error") < body.index('name="language"')
    with app.app_context():
        assert db.session.get(Subscriber, sid).language == "es"
    forged = app.test_client().post(path + "/topics", data={"language": "en"})
    assert forged.status_code == 400
    _assert_spanish(_text(forged), "Este formulario ha caducado", "Vuelva a cargar la página")
    with app.app_context():
        assert db.session.get(Subscriber, sid).language == "es"


# --- error pages ----------------------------------------------------------------------------


@pytest.mark.parametrize("ask", [{"query_string": {"lang": "es"}}, {"headers": {"Accept-Language": "es-MX"}}])
def test_the_error_pages_in_spanish(client, ask):
    missing = client.get("/no-such-page", **ask)
    assert missing.status_code == 404
    _assert_spanish(_text(missing), "Página no encontrada", "No encontramos esa página.",
                    "Volver al Centro de Acción", "Error 404")
    bad = client.get("/confirm/not-a-token", **ask)
    assert bad.status_code == 400
    _assert_spanish(_text(bad), "Este enlace no es válido",
                    "Puede que su programa de correo haya cortado el enlace.")


def test_the_error_pages_stay_english_for_english_readers_and_the_api(client):
    missing = _text(client.get("/no-such-page", headers={"Accept-Language": "en"}))
    assert "Page not found" in missing and "We couldn't find that page." in missing
    api = client.get("/api/v1/no-such-thing", headers={"Accept-Language": "es"})
    assert api.status_code == 404 and "encontr" not in _text(api)
