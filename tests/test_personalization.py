"""Alerts that greet by name: {first_name|friend} in the subject, preheader and intro."""

from __future__ import annotations

import email
import email.policy
import hashlib
import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest
import sqlalchemy as sa

from alerts.blasts import abtest, content, personal
from alerts.extensions import db
from alerts.models import Alert, Subscriber
from alerts.subscribers import fields
from tests.helpers import blasts, post, save_alert, seed_actions, wait_for_state
from tests.test_blasts import dkim_key, dns_for  # noqa: F401 - dkim_key is a fixture

SUBJECT = "Dear {first_name|friend}, act now"
INTRO = ("Hello {first_name|friend}, kids in {postal_code} need you. "
         "Read [the report](https://example.org/report?for={first_name}).")
SNAPSHOT = Path(__file__).parent / "snapshots" / "alert_without_tokens.json"


def _alert(subject: str = SUBJECT, intro: str = INTRO, preheader: str = "For {first_name|you}") -> int:
    seed_actions()
    return save_alert(None, subject=subject, intro_md=intro, preheader=preheader,
                      action_slugs=None).id


def _people(*rows: dict) -> list[str]:
    db.session.execute(sa.insert(Subscriber), [{"status": "confirmed", **r} for r in rows])
    db.session.commit()
    return [r["email"] for r in rows]


def _blast(alert_id: int, smtp, n: int) -> dict[str, email.message.EmailMessage]:
    assert blasts.launch(alert_id) == n
    assert wait_for_state(alert_id)["state"] == "sent"
    got = smtp.handler.wait_for(n, timeout=15)
    return {m.rcpt_tos[0]: m for m in got}


def _bodies(msg) -> tuple[str, str]:
    html, text = (msg.get_body((kind,)).get_content().replace("\r\n", "\n") for kind in ("html", "plain"))
    return html, text


def test_a_named_and_a_nameless_reader_each_get_their_greeting(app, ctx, smtp, celery_worker, dkim_key):  # noqa: F811
    _people({"email": "ana@example.org", "first_name": "  Ana ", "postal_code": "10027"},
            {"email": "nobody@example.org"})
    got = _blast(_alert(), smtp, 2)
    ana, nobody = got["ana@example.org"].message, got["nobody@example.org"].message
    assert ana["Subject"] == "Dear Ana, act now"
    assert nobody["Subject"] == "Dear friend, act now"
    html, text = _bodies(ana)
    assert re.search(r"<h1[^>]*>Dear Ana, act now</h1>", html) and "<title>Dear Ana, act now</title>" in html
    assert "Hello Ana, kids in 10027 need you." in html and "For Ana" in html
    assert text.startswith("Dear Ana, act now\n" + "=" * len("Dear Ana, act now") + "\n")
    assert "Hello Ana, kids in 10027 need you." in text
    html, text = _bodies(nobody)
    assert "Hello friend, kids in  need you." in html and "For you" in html
    assert text.startswith("Dear friend, act now\n" + "=" * len("Dear friend, act now") + "\n")
    assert "Hello friend, kids in  need you." in text
    for m in got.values():
        body = m.message.get_body(("html",)).get_content()
        assert "XSLOT" not in body and "{first_name" not in body.split("example.org/report")[0]
        # a link's address is left as written: a greeting never changes where a link leads
        assert "/r/" in body or "report?for=%7Bfirst_name%7D" in body
        assert dkim.verify(m.data, dnsfunc=dns_for(dkim_key))


HOSTILE = {
    "crlf@example.org": "Ana\r\nBcc: x@evil.example",
    "script@example.org": "<script>alert(1)</script>",
    "word@example.org": "=?utf-8?b?SGFja2Vk?=",
    "accents@example.org": "Zoë Núñez",
}


def test_names_that_try_header_or_html_injection_stay_words(app, ctx, smtp, celery_worker, dkim_key):  # noqa: F811
    _people(*({"email": e, "first_name": name} for e, name in HOSTILE.items()))
    got = _blast(_alert(), smtp, len(HOSTILE))
    subjects = {e: m.message["Subject"] for e, m in got.items()}
    assert subjects == {
        "crlf@example.org": "Dear Ana Bcc: x@evil.example, act now",
        "script@example.org": "Dear <script>alert(1)</script>, act now",
        "word@example.org": "Dear =?utf-8?b?SGFja2Vk?=, act now",  # not decoded into "Hacked"
        "accents@example.org": "Dear Zoë Núñez, act now",
    }
    for address, m in got.items():
        head = m.data.split(b"\r\n\r\n", 1)[0]
        assert m.message["Bcc"] is None and b"\nBcc:" not in head and b"\nbcc:" not in head.lower()
        assert m.rcpt_tos == [address]
        assert head.isascii()  # non-ASCII only RFC 2047-encoded
        assert dkim.verify(m.data, dnsfunc=dns_for(dkim_key))
    html, text = _bodies(got["script@example.org"].message)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Hello <script>alert(1)</script>, kids" in text  # the text part is text
    html, text = _bodies(got["accents@example.org"].message)
    assert "Hello Zoë Núñez, kids" in html and "Hello Zoë Núñez, kids" in text
    head = got["word@example.org"].data.split(b"\r\n\r\n")[0].decode()
    assert "\r\nSubject: =?utf-8?" in head  # encoded, so that no client decodes the name


def test_a_test_send_reads_as_a_reader_without_a_name(app, ctx, smtp):
    alert_id = _alert()
    blasts.send_test(alert_id, "me@example.org")
    (m,) = smtp.handler.wait_for(1, timeout=10)
    assert m.message["Subject"] == "[TEST] Dear friend, act now"
    html, text = _bodies(m.message)
    assert "Hello friend, kids in  need you." in html and "Hello friend" in text


def test_custom_fields_and_ab_variant_subjects_greet_too(app, ctx, dkim_key):  # noqa: F811
    """A custom field's value comes with the batch (one query); a variant's subject may greet."""
    fields.define("school", "School", "text")
    db.session.commit()
    alert_id = _alert(intro="Thanks, {first_name|friend} of {school|your school}.", preheader="")
    abtest.configure(db.session.get_one(Alert, alert_id),
                     subjects=[SUBJECT, "{first_name|Friend}: two minutes?"], sample_pct=10, wait_minutes=30)
    db.session.commit()
    ids = _people({"email": "li@example.org", "first_name": "Li"}, {"email": "kim@example.org"})
    subs = {s.email: s for s in db.session.scalars(sa.select(Subscriber).where(Subscriber.email.in_(ids)))}
    fields.set_values(subs["li@example.org"].id, {"school": ["PS 123"]})
    db.session.commit()
    factory = content.MessageFactory.for_alert(db.session.get_one(Alert, alert_id))
    rows = [SimpleNamespace(id=n, subscriber_id=subs[e].id, email=e, token_key=None, variant=v,
                            first_name=subs[e].first_name)
            for n, (e, v) in enumerate([("li@example.org", 1), ("kim@example.org", 0)], start=1)]
    factory.prepare(rows)
    li, kim = (email.message_from_bytes(factory.sign(factory.parts_row(r)), policy=email.policy.default)
               for r in rows)
    assert (li["Subject"], kim["Subject"]) == ("Li: two minutes?", "Dear friend, act now")
    assert "Thanks, Li of PS 123." in li.get_body(("plain",)).get_content()
    assert "Thanks, friend of your school." in kim.get_body(("html",)).get_content()
    for r in rows:
        data = factory.build(r.id, r.subscriber_id, r.email, person=factory._people[r.subscriber_id])
        assert dkim.verify(data, dnsfunc=dns_for(dkim_key))


def test_the_batch_loads_names_only_for_an_alert_that_greets(app, ctx, monkeypatch):
    """Without tokens the batch's query reads no profile column and no custom field; with
    them, the columns named (and custom fields only when one is named)."""
    from alerts.blasts.store import SqlBatchStore

    _people({"email": "ana@example.org", "first_name": "Ana", "postal_code": "10027"})
    asked = []
    monkeypatch.setattr(fields, "values_for", lambda ids: asked.append(ids) or {})
    store = SqlBatchStore()
    loaded = {}
    for name, alert_id in (("plain", _alert("Act now", "Hello.", "")), ("greets", _alert())):
        blasts.start_blast(alert_id)
        first, last = db.session.execute(sa.text(
            "SELECT min(id), max(id) FROM deliveries WHERE alert_id = :a"), {"a": alert_id}).one()
        batch = store.load(alert_id, first, last, store.claim(alert_id, first, last))
        loaded[name] = (batch.rows[0], batch.messages)
    plain_row, plain = loaded["plain"]
    row, greets = loaded["greets"]
    assert "first_name" not in plain_row._fields and plain.tokens == ()
    assert (row.first_name, row.postal_code) == ("Ana", "10027") and "last_name" not in row._fields
    assert greets.default._people[row.subscriber_id] == {"first_name": "Ana", "postal_code": "10027"}
    assert asked == []  # no custom field named: not asked for


# -- braces that are not tokens, and tokens that name no field --------------------------------------


@pytest.mark.parametrize("text", ["{not a token}", "{Not}", "{}", "{1st}", "a { b } c", "{first name}",
                                  '{"json": 1}', "{{first_name}", "x{"])
def test_braces_that_are_not_tokens_are_text(text):
    assert personal.tokens_in(text) == () or text == "{{first_name}"
    assert personal.unknown(text, ["first_name"]) is None


def test_tokens_are_a_key_and_a_fallback():
    found = personal.tokens_in("Dear {first_name|friend}, {first_name|friend} {first_name} {last_name| }")
    assert [(t.key, t.fallback) for t in found] == [("first_name", "friend"), ("first_name", ""),
                                                    ("last_name", "")]
    assert len({t.slot for t in found}) == 3 and all(re.fullmatch(r"[a-z0-9_]+", t.slot) for t in found)
    assert personal.values(found, {"first_name": " Ana\n", "last_name": None}) == {
        found[0].slot: "Ana", found[1].slot: "Ana", found[2].slot: ""}
    assert personal.values(found, None)[found[0].slot] == "friend"


def test_an_alert_with_braces_but_no_token_sends_as_written(app, ctx):
    alert_id = _alert("Act now {not a token}", "Say {yes or no} and {Not}.", "")
    rendered = content.preview(db.session.get_one(Alert, alert_id))
    assert rendered.subject == "Act now {not a token}"
    assert "Say {yes or no} and {Not}." in rendered.html and "Say {yes or no} and {Not}." in rendered.text


def test_a_backslash_keeps_a_token_as_written_in_the_intro(app, ctx):
    alert_id = _alert("Act now", "Write \\{first_name} to greet; {first_name|friend}.", "")
    rendered = content.preview(db.session.get_one(Alert, alert_id))
    assert "Write {first_name} to greet; Ana." in rendered.html


def test_compose_refuses_a_token_naming_no_field_next_to_the_field(app, staff_client):
    with app.app_context():
        seed_actions()
        slug = db.session.scalar(sa.text("SELECT slug FROM actions ORDER BY position LIMIT 1"))
    page = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    assert 'id="greeting-help"' in page and "<code>{first_name|friend}</code>" in page
    assert "<code>{postal_code}</code>" in page
    for name, value in (("subject", "Hi {nickname|you}"), ("intro_md", "Hello {nick}"),
                        ("preheader", "For {zip}"), ("subject_b", "Yo {nickname}")):
        form = {"subject": "Fine subject", "intro_md": "Hello", "actions": [slug], name: value}
        if name == "subject_b":
            form.update(ab_sample="10", ab_wait="60", ab_metric="clicks")
        response = post(staff_client, "/staff/alerts/new", form, page="/staff/alerts/new")
        assert response.status_code == 400, name
        body = response.get_data(as_text=True)
        error = re.search(rf'<p class="field-error" id="{name}-error">([^<]*)</p>', body)
        assert error, (name, body)
        key = re.search(r"\{(\w+)", value).group(1)
        assert "{" + key + "}" in error.group(1) and "first_name, last_name, postal_code" in error.group(1)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_the_cli_refuses_a_token_naming_no_field(app, ctx):
    seed_actions()
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["alert", "create", "--subject", "Hi {nickname|you}", "--intro", "x"])
    assert bad.exit_code == 2 and "{nickname}" in bad.output and "first_name" in bad.output
    bad = runner.invoke(args=["alert", "create", "--subject", "Hi", "--intro", "x {zip}"])
    assert bad.exit_code == 2 and "{zip}" in bad.output
    good = runner.invoke(args=["alert", "create", "--subject", "Hi {first_name|there}", "--intro", "{x y}"])
    assert good.exit_code == 0, good.output


def test_the_preview_shows_a_named_and_a_nameless_reader(app, staff_client):
    with app.app_context():
        alert_id = _alert()
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert f'src="/staff/alerts/{alert_id}/preview.html"' in page
    assert f'src="/staff/alerts/{alert_id}/preview.html?reader=nameless"' in page
    named = staff_client.get(f"/staff/alerts/{alert_id}/preview.html").get_data(as_text=True)
    nameless = staff_client.get(f"/staff/alerts/{alert_id}/preview.html?reader=nameless").get_data(
        as_text=True)
    assert "Dear Ana, act now" in named and "kids in 10027 need you" in named
    assert "Dear friend, act now" in nameless and "kids in  need you" in nameless
    text = staff_client.get(f"/staff/alerts/{alert_id}/preview.txt?reader=nameless").get_data(as_text=True)
    assert text.startswith("Subject: Dear friend, act now\n\nDear friend, act now\n" + "=" * 20 + "\n")
    approving = staff_client.get(f"/staff/alerts/{alert_id}/approve").get_data(as_text=True)
    assert f'src="/staff/alerts/{alert_id}/preview.html?reader=nameless"' in approving  # the approver's too
    with app.app_context():
        plain = _alert("Act now", "Hello.", "")
    page = staff_client.get(f"/staff/alerts/{plain}").get_data(as_text=True)
    assert "reader=nameless" not in page  # an alert that greets no one has one preview


# -- an alert without tokens: the same bytes as before greetings existed --------------------------


def _digests(factory: content.MessageFactory) -> dict[str, str]:
    """What the factory makes of a test send and of two subscribers' deliveries, hashed."""
    out = {}
    for name, args in (("test", (None, None, "me@example.org")),
                       ("reader7", (7, 7, "reader7@example.org", "", "k7")),
                       ("reader8", (8, 8, "reader8@example.org", "", "k8"))):
        made = factory.fields(*args)
        for part in ("subject", "text_qp", "html_qp"):
            value = made[part]
            raw = value if isinstance(value, bytes) else value.encode()
            out[f"{name}.{part}"] = hashlib.sha256(raw).hexdigest()
        headers = json.dumps(made["extra_headers"]).replace(f"alert{factory.alert_id}:", "alertN:")
        out[f"{name}.headers"] = hashlib.sha256(headers.encode()).hexdigest()
    return out


def test_an_alert_without_tokens_builds_the_same_bytes_as_before(app, ctx, monkeypatch):
    """Stored from the code before greetings, its headers again once messages named their
    Content-Language, the bodies unchanged (UPDATE_SNAPSHOTS=1 writes it anew). Links go out
    plain, so that no byte depends on the ids the database gives (its sequences differ)."""
    monkeypatch.setitem(app.config, "TRACK_OPENS", False)
    monkeypatch.setitem(app.config, "TRACK_CLICKS", False)
    seed_actions()
    alert_id = save_alert(None, subject="Act now {not a token} for kids",
                          intro_md=("Thank you for **standing up** for children {Not} {}.\n\n"
                                    "[Read the report](https://example.org/report) and {yes or no}."),
                          preheader="Two minutes that matter", action_slugs=None).id
    factory = content.MessageFactory.for_alert(db.session.get_one(Alert, alert_id))
    assert not getattr(factory, "tokens", ())
    actual = _digests(factory)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
    assert actual == json.loads(SNAPSHOT.read_text())
