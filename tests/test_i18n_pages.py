"""The public pages in the reader's language: chosen by ?lang=, kept in a cookie, or read from
Accept-Language; every page offers the switch and its other languages' addresses; a signup keeps
the page's language as the subscriber's, and its messages come in that language too."""

from __future__ import annotations

import html
import json
import re

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Action, SignupAttempt, Subscriber
from tests.helpers import apply_signups, seed_actions
from tests.test_embeds import PARTNER, form_of
from tests.test_embeds import post as embed_post
from tests.test_signing import PLEDGE, sign
from tests.test_signup_fields import error_of

IP = "198.51.100.71"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def embedded(app, ctx, monkeypatch):
    """The embeds may be placed on the partner's site (as tests/test_embeds.py sets them up)."""
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", (PARTNER,))
    monkeypatch.setitem(app.config, "EMBED_POW_MAX_NUMBER", 2000)
    return app


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_actions()


def html_lang(body: str) -> str:
    return re.search(r'<html lang="([^"]+)"', body).group(1)


def subscriber(email: str) -> Subscriber | None:
    db.session.rollback()
    return db.session.scalar(sa.select(Subscriber).where(Subscriber.email_key == email.lower()))


def site_signup(client, page: str = "/", **typed):
    """Post the signup form as the page at `page` shows it (its hidden inputs included)."""
    body = client.get(page).get_data(as_text=True)
    hidden = {name: html.unescape(value) for name, value in HIDDEN_RE.findall(body)}
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    data = {**hidden, "csrf_token": token, "website": "", **typed}
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": IP})


def test_lang_es_speaks_spanish_and_the_cookie_keeps_it_for_the_next_page(client, ctx, seeded):
    first = client.get("/?lang=es")
    body = first.get_data(as_text=True)
    assert html_lang(body) == "es"
    assert "<h1>Centro de Acción</h1>" in body and "Suscribirme" in body
    assert "Action Center</h1>" not in body
    assert "lang=es" in first.headers.get("Set-Cookie", "")
    assert "Accept-Language" in first.headers["Vary"]
    action = client.get(f"/actions/{PLEDGE}").get_data(as_text=True)  # no ?lang= now: the cookie
    assert html_lang(action) == "es" and "Firmar el compromiso" in action and "Su nombre" in action
    back = client.get("/?lang=en").get_data(as_text=True)
    assert html_lang(back) == "en" and "<h1>Action Center</h1>" in back
    assert html_lang(client.get("/").get_data(as_text=True)) == "en"


def test_accept_language_chooses_spanish_and_an_unknown_lang_falls_back(client, ctx, seeded):
    body = client.get("/", headers={"Accept-Language": "es-MX,es;q=0.9"}).get_data(as_text=True)
    assert html_lang(body) == "es" and "Centro de Acción" in body
    french = client.get("/?lang=fr")
    assert html_lang(french.get_data(as_text=True)) == "en"
    assert "lang=" not in french.headers.get("Set-Cookie", "")
    # An unknown ?lang= leaves the browser's own choice standing.
    both = client.get("/?lang=fr", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert html_lang(both) == "es"


def test_every_public_page_has_the_switch_and_hreflang_addresses(client, ctx, seeded, app):
    base = app.config["BASE_URL"]
    body = client.get(f"/actions/{PLEDGE}?src=share&lang=es").get_data(as_text=True)
    switch = re.search(r'<nav class="wrap lang-switch" aria-label="Idioma">(.*?)</nav>', body, re.S).group(1)
    links = re.findall(r'<a href="([^"]+)" lang="(\w+)" hreflang="\w+"( aria-current="true")?>([^<]+)</a>',
                       switch)
    assert [(lang, name, bool(current)) for _, lang, current, name in links] == [
        ("en", "English", False), ("es", "Español", True)]
    hrefs = {lang: html.unescape(href) for href, lang, _, _ in links}
    assert hrefs["en"].startswith(f"/actions/{PLEDGE}?")
    assert "src=share" in hrefs["en"] and "lang=en" in hrefs["en"]
    alternates = dict(re.findall(r'<link rel="alternate" hreflang="([\w-]+)" href="([^"]+)">', body))
    assert set(alternates) == {"en", "es", "x-default"}
    assert html.unescape(alternates["es"]) == f"{base}/actions/{PLEDGE}?src=share&lang=es"
    assert html.unescape(alternates["x-default"]) == f"{base}/actions/{PLEDGE}?src=share"
    assert '<a class="skip-link" href="#main">Saltar al contenido</a>' in body
    for path in ("/", f"/actions/{PLEDGE}/thanks"):
        page = client.get(path).get_data(as_text=True)
        assert 'class="wrap lang-switch"' in page and 'hreflang="x-default"' in page, path


def test_an_alerts_reference_stays_on_the_switch_but_never_in_hreflang(client, ctx, seeded):
    body = client.get(f"/actions/{PLEDGE}?r=not-a-real-reference").get_data(as_text=True)
    switch = re.search(r'<nav class="wrap lang-switch".*?</nav>', body, re.S).group(0)
    assert "r=not-a-real-reference" in switch
    alternates = re.findall(r'<link rel="alternate"[^>]+>', body)
    assert alternates and not any("not-a-real-reference" in a for a in alternates)


def test_staff_pages_and_the_api_reference_have_no_switch_and_stay_english(client, ctx):
    for path in ("/staff/login?lang=es", "/api/v1/docs?lang=es"):
        body = client.get(path).get_data(as_text=True)
        assert html_lang(body) == "en" and "lang-switch" not in body and 'hreflang=' not in body, path


def test_counts_are_written_as_the_language_writes_them(client, ctx, seeded):
    action = db.session.scalar(sa.select(Action).where(Action.slug == PLEDGE))
    action.goal = 25000
    db.session.commit()
    from alerts.actions import signing
    counts = {"value": 12345}
    original = signing.count
    signing.count = lambda action_id: counts["value"]  # a tally this large without 12,345 rows
    try:
        es = client.get(f"/actions/{PLEDGE}?lang=es").get_data(as_text=True)
        en = client.get(f"/actions/{PLEDGE}?lang=en").get_data(as_text=True)
        counts["value"] = 1
        one = client.get(f"/actions/{PLEDGE}?lang=es").get_data(as_text=True)
    finally:
        signing.count = original
    assert "<strong>12.345</strong> firmas" in es and "Meta: 25.000" in es
    assert "<strong>12,345</strong> signatures" in en and "Goal 25,000" in en
    assert "<strong>1</strong> firma<" in one


def test_a_spanish_signup_makes_a_spanish_subscriber(client, ctx):
    client.get("/?lang=es")
    resp = site_signup(client, "/", email="lucia@example.org", first_name="Lucía")
    assert resp.status_code == 303
    [attempt] = db.session.scalars(sa.select(SignupAttempt)).all()
    assert attempt.profile["language"] == "es"
    apply_signups()
    assert subscriber("lucia@example.org").language == "es"
    client.get("/?lang=en")
    site_signup(client, "/", email="ann@example.org")
    apply_signups()
    assert subscriber("ann@example.org").language == "en"


def test_a_made_up_language_on_the_form_is_not_kept(client, ctx):
    body = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', body).group(1)
    resp = client.post("/subscribe", data={"csrf_token": token, "email": "zed@example.org", "website": "",
                                           "language": "klingon"}, environ_base={"REMOTE_ADDR": IP})
    assert resp.status_code == 303
    apply_signups()
    assert subscriber("zed@example.org").language is None


def test_a_bad_postcode_is_told_in_spanish_next_to_the_field(client, ctx):
    client.get("/?lang=es")
    resp = site_signup(client, "/", email="pepe@example.org", first_name="Pepe", postal_code="10$01")
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert html_lang(body) == "es"
    assert error_of(body, "signup-postal_code") == "Código postal: solo letras, números, espacios y guiones"
    bad_email = site_signup(client, "/", email="not an address")
    assert "Esa no parece una dirección de correo electrónico." in bad_email.get_data(as_text=True)
    assert db.session.scalars(sa.select(SignupAttempt)).all() == []


def test_english_messages_are_unchanged(client, ctx):
    resp = site_signup(client, "/?lang=en", email="pepe@example.org", postal_code="10$01")
    assert error_of(resp.get_data(as_text=True), "signup-postal_code") == (
        "Postal code: letters, digits, spaces and hyphens only")


def test_a_signatures_also_send_me_alerts_keeps_the_pages_language(client, ctx, seeded):
    resp = sign(client, PLEDGE, query={"lang": "es"}, name="Marta Ruiz", email="marta@example.org",
                opt_in="1")
    assert resp.status_code == 303
    apply_signups()
    sub = subscriber("marta@example.org")
    assert (sub.language, sub.first_name) == ("es", "Marta")


def test_a_signing_error_is_in_spanish(client, ctx, seeded):
    resp = sign(client, PLEDGE, query={"lang": "es"}, name="", email="marta@example.org")
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert '<p class="field-error" id="name-error" role="alert">Escriba su nombre.</p>' in body


def test_the_embedded_signup_in_spanish(embedded, client):
    page = client.get("/embed/signup?lang=es", headers={"Cookie": ""}).get_data(as_text=True)
    assert html_lang(page) == "es" and "Reciba alertas de acción" in page
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page).group(1))
    assert action == "/embed/signup?lang=es"  # a frame keeps no cookie: the form carries its language
    client.delete_cookie("lang")
    fields = form_of(client, "/embed/signup", {"lang": "es"})
    assert fields["language"] == "es"
    client.delete_cookie("lang")
    bad = embed_post(client, action, {**fields, "email": "nope"})
    assert bad.status_code == 400
    assert "Esa no parece una dirección de correo electrónico." in bad.get_data(as_text=True)
    done = embed_post(client, action, {**form_of(client, "/embed/signup", {"lang": "es"}),
                                       "email": "rosa@example.org"})
    assert done.status_code == 200 and "Revise su correo" in done.get_data(as_text=True)
    apply_signups()
    assert subscriber("rosa@example.org").language == "es"


def test_the_embedded_action_in_spanish(embedded, client, seeded):
    page = client.get(f"/embed/actions/{PLEDGE}?lang=es").get_data(as_text=True)
    assert html_lang(page) == "es" and "Firmar el compromiso" in page
    assert 'data-checking="Comprobando…"' in page and "<strong>0</strong> firmas" in page


def test_embed_js_names_its_frames_in_each_language(client, ctx):
    js = client.get("/embed.js").get_data(as_text=True)
    titles = json.loads(re.search(r"const TITLES = (.*);", js).group(1))
    assert titles["es"] == {"action": "Firmar la petición", "signup": "Suscribirse a las alertas de acción"}
    assert titles["en"] == {"action": "Sign the petition", "signup": "Sign up for action alerts"}
    assert 'url.searchParams.set("lang", lang)' in js


def test_a_built_in_label_is_translated_until_staff_rename_it(client, ctx):
    from alerts.subscribers import fields

    body = client.get("/?lang=es").get_data(as_text=True)
    assert '<label for="signup-first_name">Nombre <span class="optional">(opcional)</span></label>' in body
    fields.change("first_name", label="Your first name", required=True, on_signup=True)
    db.session.commit()
    renamed = client.get("/?lang=es").get_data(as_text=True)
    assert ('<label for="signup-first_name">Your first name <span class="required">(obligatorio)</span>'
            '</label>') in renamed
    resp = site_signup(client, "/", email="sin@example.org")
    assert error_of(resp.get_data(as_text=True), "signup-first_name") == (
        "Your first name: este dato es obligatorio")


def test_the_thank_you_and_confirmation_pages_in_spanish(client, ctx, seeded):
    thanks = client.get(f"/actions/{PLEDGE}/thanks?check=1&lang=es").get_data(as_text=True)
    assert html_lang(thanks) == "es" and "Ya casi está: revise su correo" in thanks
    assert 'data-copied="Enlace copiado"' in thanks and "Volver al Centro de Acción" in thanks
    broken = client.get("/actions/confirm/not-a-token").get_data(as_text=True)
    assert html_lang(broken) == "es" and "Este enlace no funciona" in broken
