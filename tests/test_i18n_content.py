"""Content per language: an alert's, an action's and the welcome's Spanish version; each reader
gets theirs, else the whole text in English; approvals, audiences and reports by language."""

from __future__ import annotations

import email
import email.policy

import sqlalchemy as sa

from alerts.actions import open_actions, save_translation, text_of
from alerts.blasts import approval, content
from alerts.blasts.compose import save_alert as edit_alert
from alerts.extensions import db
from alerts.models import Action, Alert, AuditEvent, Click, Delivery, Signature, Subscriber
from alerts.reports import alert_report
from alerts.reports.dashboard import readers_by_language
from alerts.subscribers import welcome
from tests.helpers import approve, blasts, post, save_alert, seed_actions, wait_for_state
from tests.test_blasts import dkim_key  # noqa: F401 - a fixture

ES = {"subject": "Hola {first_name|amistad}: actúe ahora por la niñez",
      "preheader": "Dos minutos que importan",
      "intro_md": "Gracias por **defender** a niñas, niños y jóvenes."}


def _seed_english_only() -> None:
    """The seed's actions without their Spanish versions: what "missing" looks like."""
    seed_actions()
    for a in db.session.scalars(sa.select(Action)):
        a.translations = None
    db.session.commit()


def _translate_actions() -> None:
    for a in open_actions():
        save_translation(a, "es", title=f"Acción {a.id} en español", summary="Resumen en español.",
                         call_to_action="Firme la petición",
                         pledge_text="Me comprometo." if a.pledge_text else "")
    db.session.commit()


def _alert(spanish: bool = True) -> int:
    _seed_english_only()
    alert = save_alert(None, subject="Dear {first_name|friend}, act now",
                       intro_md="Thank you for **standing up**.", preheader="Two minutes",
                       translations={"es": ES} if spanish else None)
    return alert.id


def _people(*rows: dict) -> None:
    db.session.execute(sa.insert(Subscriber), [{"status": "confirmed", **r} for r in rows])
    db.session.commit()


def _blast(alert_id: int, smtp, n: int) -> dict:
    assert blasts.launch(alert_id) == n
    assert wait_for_state(alert_id)["state"] == "sent"
    return {m.rcpt_tos[0]: m.message for m in smtp.handler.wait_for(n, timeout=15)}


def _html(msg) -> str:
    return msg.get_body(("html",)).get_content()


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def test_a_spanish_and_an_english_reader_each_get_the_alert_in_their_language(
        app, ctx, smtp, celery_worker, dkim_key):  # noqa: F811
    _people({"email": "ana@example.org", "first_name": "Ana", "language": "es"},
            {"email": "bob@example.org", "first_name": "Bob", "language": "en"},
            {"email": "old@example.org"})  # no language stored: the default
    alert_id = _alert()
    _translate_actions()
    got = _blast(alert_id, smtp, 3)
    ana, bob, old = got["ana@example.org"], got["bob@example.org"], got["old@example.org"]
    assert ana["Subject"] == "Hola Ana: actúe ahora por la niñez"
    assert ana["Content-Language"] == "es"
    html, text = _html(ana), _text(ana)
    assert "Gracias por <strong>defender</strong> a niñas, niños y jóvenes." in html
    assert "Dos minutos que importan" in html and "Firme la petición" in html and "Firme la petición" in text
    assert "Thank you for" not in html and "Two minutes" not in html and "Sign the Petition" not in html
    assert "lang=es" in html or "/r/" in html  # hosted actions open in Spanish (through /r/ when tracked)
    for msg, name in ((bob, "Bob"), (old, "friend")):
        assert msg["Subject"] == f"Dear {name}, act now" and msg["Content-Language"] == "en"
        assert "Thank you for <strong>standing up</strong>." in _html(msg)
        assert "Gracias" not in _html(msg) and "Firme" not in _html(msg)

    rows = {r["language"]: r for r in alert_report.report(alert_id)["by_language"]}
    assert (rows["es"]["recipients"], rows["es"]["delivered"]) == (1, 1)
    assert (rows["en"]["recipients"], rows["en"]["delivered"]) == (2, 2)
    # one Spanish reader clicks and signs: the rates are per language
    es_delivery = db.session.scalar(
        sa.select(Delivery.id).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Subscriber.email == "ana@example.org"))
    action = open_actions()[0]
    db.session.add(Click(alert_id=alert_id, delivery_id=es_delivery, action_id=action.id))
    db.session.add(Signature(action_id=action.id, email="ana@example.org", email_key="ana@example.org",
                             source="alert", alert_id=alert_id, delivery_id=es_delivery))
    db.session.commit()
    rows = {r["language"]: r for r in alert_report.report(alert_id)["by_language"]}
    es = rows["es"]
    assert (es["clickers"], es["click_rate"], es["signers"], es["sign_rate"]) == (1, 1.0, 1, 1.0)
    assert (rows["en"]["clickers"], rows["en"]["signers"], rows["en"]["sign_rate"]) == (0, 0, 0.0)


def test_an_alert_without_spanish_goes_wholly_english_to_a_spanish_reader(
        app, ctx, smtp, celery_worker, dkim_key):  # noqa: F811
    _people({"email": "ana@example.org", "first_name": "Ana", "language": "es"})
    alert_id = _alert(spanish=False)
    _translate_actions()  # its actions have a Spanish version, the alert itself has none
    (ana,) = _blast(alert_id, smtp, 1).values()
    assert ana["Subject"] == "Dear Ana, act now" and ana["Content-Language"] == "en"
    assert "Thank you for" in _html(ana) and "Firme" not in _html(ana) and "Acción" not in _html(ana)


def test_an_action_without_spanish_keeps_the_whole_alert_english(app, ctx):
    alert_id = _alert()  # the seeded actions without their Spanish versions
    alert = db.session.get_one(Alert, alert_id)
    assert content.alert_languages(alert) == ["en"]
    factories = content.FactoriesByLanguage.for_alert(alert)
    assert factories.factory_of("es") is factories.default and factories.factory_of("es").lang == ""
    _translate_actions()
    db.session.expire_all()
    alert = db.session.get_one(Alert, alert_id)
    factories = content.FactoriesByLanguage.for_alert(alert)
    assert factories.factory_of("es").lang == "es" and factories.factory_of("es-MX").lang == "es"
    assert factories.factory_of("fr") is factories.default and factories.factory_of(None) is factories.default
    rendered = content.preview(alert, lang="es")
    assert rendered.subject == "Hola Ana: actúe ahora por la niñez"
    assert "Acción" in rendered.html and "Dear" not in rendered.html


def test_a_test_send_in_spanish(app, ctx, smtp):
    alert_id = _alert()
    _translate_actions()
    blasts.send_test(alert_id, "me@example.org", "es")
    (m,) = smtp.handler.wait_for(1, timeout=10)
    assert m.message["Subject"] == "[TEST] Hola amistad: actúe ahora por la niñez"
    assert "Gracias por" in _html(m.message)


def test_a_change_to_the_spanish_subject_voids_the_approval(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "APPROVAL_MIN_RECIPIENTS", 1)
    _people({"email": "ana@example.org", "language": "es"})
    alert_id = _alert()
    approve(alert_id)
    alert = db.session.get_one(Alert, alert_id)
    assert approval.standing(alert, None).state == "approved"
    edit_alert(alert, subject=alert.subject, intro_md=alert.intro_md, preheader=alert.preheader,
               action_slugs=[a.slug for a in alert.actions], audience=alert.audience,
               translations={"es": {**ES, "subject": "Otro asunto"}})
    db.session.commit()
    standing = approval.standing(db.session.get_one(Alert, alert_id), None)
    assert standing.state == "void" and standing.changed == ["content"]


def test_the_action_page_speaks_the_page_language_else_english(app, client):
    with app.app_context():  # each request its own app context: the page language is per request
        _seed_english_only()
        first, second = open_actions()[:2]
        save_translation(first, "es", title="La detención no es lugar para la niñez", summary="Resumen.",
                         call_to_action="Firme la petición", body="Texto completo en español.")
        db.session.commit()
        first_slug, first_title = first.slug, first.title
        second_slug, second_title = second.slug, second.title
    page = client.get(f"/actions/{first_slug}?lang=es").get_data(as_text=True)
    assert "<h1>La detención no es lugar para la niñez</h1>" in page and "Texto completo en español." in page
    assert "Firme la petición" in page and first_title not in page
    english = client.get(f"/actions/{first_slug}?lang=en").get_data(as_text=True)
    assert f"<h1>{first_title}</h1>" in english and "La detención" not in english
    fallback = client.get(f"/actions/{second_slug}?lang=es").get_data(as_text=True)
    assert f"<h1>{second_title}</h1>" in fallback  # no Spanish version: the English text, whole
    center = client.get("/?lang=es").get_data(as_text=True)
    assert "La detención no es lugar para la niñez" in center and second_title in center


def test_a_version_without_a_title_is_no_version(app, ctx):
    seed_actions()
    action = open_actions()[0]
    action.translations = {"es": {"summary": "Sólo un resumen"}}
    text = text_of(action, "es")
    assert (text.lang, text.title, text.summary) == ("en", action.title, action.summary)


def test_the_welcome_in_spanish_once_it_and_every_open_action_have_one(app, ctx):
    _seed_english_only()
    assert welcome.text_in(welcome.text(), "es")[0] == "en"  # the actions have no Spanish yet
    _translate_actions()
    lang, subject, body = welcome.text_in(welcome.text(), "es")
    assert lang == "es" and subject.startswith("Le damos la bienvenida") and "Gracias por sumarse" in body
    rendered = welcome.compiled_welcome("es").personalize(unsubscribe_url="https://x/u",
                                                          email="a@example.org")
    assert "Firme la petición" in rendered.html and "Sign the Petition" not in rendered.html
    welcome.save_text("Welcome", "Hello.", True, translations={"es": {"subject": "", "body_md": ""}})
    db.session.commit()
    assert welcome.text_in(welcome.text(), "es")[:2] == ("en", "Welcome")


def test_audiences_by_language(app, ctx):
    from alerts import audiences

    _people({"email": "a@example.org", "language": "es"}, {"email": "b@example.org", "language": "es-MX"},
            {"email": "c@example.org", "language": "en"}, {"email": "d@example.org"},
            {"email": "e@example.org", "language": "fr"})
    count = {code: audiences.size(audiences.parse({"languages": [code]}), []) for code in ("es", "en")}
    assert count == {"es": 2, "en": 3}  # no language and one not offered read English
    assert audiences.size(audiences.parse({"languages": ["en", "es"]}), []) == 5
    assert "who read Spanish" in audiences.describe(audiences.parse({"languages": ["es"]}))
    try:
        audiences.parse({"languages": ["klingon"]})
    except audiences.AudienceError as exc:
        assert "klingon" in str(exc)
    else:
        raise AssertionError("an unknown language was taken")
    assert dict(readers_by_language()) == {"English": 3, "Spanish": 2}


def test_the_compose_page_saves_the_spanish_version_and_says_what_is_missing(app, staff_client):
    with app.app_context():
        _seed_english_only()
    page = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    assert "Spanish version (optional)" in page and 'name="subject_es"' in page
    base = {"subject": "Act now", "intro_md": "Hello.", "actions": []}
    with app.app_context():
        base["actions"] = [a.slug for a in open_actions()]
    bad = post(staff_client, "/staff/alerts/new", {**base, "intro_md_es": "Hola."})
    assert bad.status_code == 400
    assert "needs a subject" in bad.get_data(as_text=True)
    ok = post(staff_client, "/staff/alerts/new",
              {**base, "subject_es": "Actúe ahora", "intro_md_es": "Hola."})
    assert ok.status_code == 303
    with app.app_context():
        alert = db.session.scalar(sa.select(Alert).order_by(Alert.id.desc()))
        assert alert.translations == {"es": {"subject": "Actúe ahora", "intro_md": "Hola."}}
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "alert.create"))
        assert event.detail["languages"] == ["en", "es"] and event.detail["translated_changed"] == ["es"]
    listing = staff_client.get("/staff/actions").get_data(as_text=True)
    assert listing.count("Spanish missing") == 7
    alerts_page = staff_client.get("/staff/alerts").get_data(as_text=True)
    assert "Spanish missing" not in alerts_page


def test_the_action_form_saves_the_spanish_version_audited_by_language(app, staff_client):
    with app.app_context():
        _seed_english_only()
        action = open_actions()[0]
        action_id, data = action.id, {"title": action.title, "slug": action.slug, "summary": action.summary,
                                      "call_to_action": action.call_to_action, "kind": action.kind,
                                      "is_open": "y", "body": action.body}
    bad = post(staff_client, f"/staff/actions/{action_id}/edit", {**data, "title_es": "Título"})
    assert bad.status_code == 400 and "needs a button text" in bad.get_data(as_text=True)
    ok = post(staff_client, f"/staff/actions/{action_id}/edit",
              {**data, "title_es": "Título", "call_to_action_es": "Firme"})
    assert ok.status_code == 303
    with app.app_context():
        saved = db.session.get_one(Action, action_id)
        assert saved.translations == {"es": {"title": "Título", "call_to_action": "Firme"}}
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "action.edit")
                                  .order_by(AuditEvent.id.desc()))
        assert event.detail["languages"] == ["es"] and "title_es" in event.detail["fields"]


def test_a_raw_message_names_its_language(app, ctx):
    """Content-Language is one header, whatever the language."""
    alert_id = _alert()
    _translate_actions()
    alert = db.session.get_one(Alert, alert_id)
    for lang, want in ((None, "en"), ("es", "es")):
        factory = content.MessageFactory.for_alert(alert, lang)
        raw = factory.build(None, None, "x@example.org")
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert msg.get_all("Content-Language") == [want]


def test_the_cli_creates_an_alert_with_a_spanish_version_for_spanish_readers(app, ctx):
    seed_actions()
    result = app.test_cli_runner().invoke(args=[
        "alert", "create", "--subject", "Act now", "--intro", "Hello.", "--subject-es", "Actúe ahora",
        "--intro-es", "Hola.", "--language", "es"])
    assert result.exit_code == 0, result.output
    alert = db.session.get_one(Alert, int(result.output.strip()))
    assert alert.translations == {"es": {"subject": "Actúe ahora", "intro_md": "Hola."}}
    assert alert.audience == {"languages": ["es"]}
    refused = app.test_cli_runner().invoke(args=[
        "alert", "create", "--subject", "Act now", "--intro", "Hello.", "--intro-es", "Hola."])
    assert refused.exit_code == 2 and "needs a subject" in refused.output


def test_the_seed_actions_come_in_spanish_and_so_does_the_default_welcome(app, client):
    with app.app_context():
        seed_actions()
        assert all(text_of(a, "es").lang == "es" for a in open_actions())
        lang, subject, _body = welcome.text_in(welcome.text(), "es")
        assert lang == "es" and subject.startswith("Le damos la bienvenida")
    center = client.get("/?lang=es").get_data(as_text=True)
    assert "La detención no es lugar para la infancia" in center and "Firme el compromiso" in center
    assert "Detention is No Place for a Child" not in center


def test_the_seed_never_translates_what_staff_rewrote(app, ctx):
    seed_actions()
    action = open_actions()[0]
    action.title, action.translations = "Our own words", None
    db.session.commit()
    seed_actions()
    assert db.session.get_one(Action, action.id).translations is None
