"""The embedded forms: who may frame and post them, the form token, the proof of work, the
honeypot and rate limits, and source codes from `?source=` to the rows they lead to."""

from __future__ import annotations

import html
import json
import re

import pytest
import sqlalchemy as sa

from alerts.config import ConfigError, _origins
from alerts.embeds import formtokens, origins, pow
from alerts.embeds.sources import clean_source
from alerts.extensions import db
from alerts.models import Action, ConsentRecord, Signature, SignupAttempt, Subscriber, utcnow
from tests.helpers import apply_signups, seed_actions, subscribe

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
PARTNER = "https://www.partner.example"
OWN = "https://alerts.example.org"
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
CHALLENGE_RE = re.compile(r'data-challenge="([^"]+)"')


@pytest.fixture
def embeds(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", (PARTNER,))
    monkeypatch.setitem(app.config, "EMBED_POW_MAX_NUMBER", 2000)
    return app


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_actions()


def form_of(client, path: str, query: dict | None = None) -> dict[str, str]:
    """The hidden fields of an embedded form, with its challenge solved as the browser would."""
    page = client.get(path, query_string=query or {})
    assert page.status_code == 200, page.status_code
    body = page.get_data(as_text=True)
    fields = {name: html.unescape(value) for name, value in HIDDEN_RE.findall(body)}
    fields["altcha"] = pow.solve(json.loads(html.unescape(CHALLENGE_RE.search(body).group(1))))
    return fields


def post(client, path: str, fields: dict, *, origin: str | None = PARTNER, referer: str | None = None,
         ip: str = "198.51.100.90"):
    headers = {k: v for k, v in (("Origin", origin), ("Referer", referer)) if v}
    return client.post(path, data=fields, headers=headers, environ_base={"REMOTE_ADDR": ip})


def attempts() -> list[SignupAttempt]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(SignupAttempt).order_by(SignupAttempt.id)))


def signatures() -> list[Signature]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(Signature).order_by(Signature.id)))


# -- framing --------------------------------------------------------------------------------


def test_embed_pages_are_framable_by_the_listed_origins_only_and_other_pages_by_none(embeds, client, seeded):
    for path in ("/embed/signup", f"/embed/actions/{RIKERS}"):
        response = client.get(path)
        assert response.status_code == 200
        assert f"frame-ancestors 'self' {PARTNER};" in response.headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in response.headers
        assert response.headers["Cache-Control"] == "no-store"
    for path in ("/", f"/actions/{RIKERS}"):
        response = client.get(path)
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"


def test_with_no_embed_origins_only_the_site_itself_may_frame_them(app, client, seeded, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", ())
    csp = client.get("/embed/signup").headers["Content-Security-Policy"]
    assert "frame-ancestors 'self';" in csp


def test_an_unknown_action_is_a_404(embeds, client, seeded):
    assert client.get("/embed/actions/no-such-thing").status_code == 404


def test_embed_origins_are_validated_naming_the_bad_entry(monkeypatch):
    monkeypatch.setenv("EMBED_ORIGINS", " https://www.Example.org/ , http://localhost:8000")
    assert _origins("EMBED_ORIGINS") == ("https://www.example.org", "http://localhost:8000")
    for bad in ("www.example.org", "https://example.org/path", "ftp://example.org", "https://*.example.org",
                "https://example.org:port"):
        monkeypatch.setenv("EMBED_ORIGINS", f"https://ok.example, {bad}")
        with pytest.raises(ConfigError, match=re.escape(repr(bad))):
            _origins("EMBED_ORIGINS")


def test_embed_js_places_frames_and_checks_messages_come_from_here(embeds, client):
    response = client.get("/embed.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/javascript")
    body = response.get_data(as_text=True)
    assert f'const BASE = "{OWN}";' in body and f'const ORIGIN = "{OWN}";' in body
    assert "event.origin !== ORIGIN" in body and "frame.title" in body


# -- the Origin check -----------------------------------------------------------------------


def test_origin_of_and_may_post():
    cfg = {"BASE_URL": "https://alerts.example.org/", "EMBED_ORIGINS": (PARTNER, "http://localhost:8000")}
    assert origins.origin_of("HTTPS://WWW.Partner.Example:443/page?x") == PARTNER
    assert origins.origin_of("javascript:alert(1)") is None
    assert origins.may_post(cfg, PARTNER, None)
    assert origins.may_post(cfg, None, "http://localhost:8000/page.html")
    assert origins.may_post(cfg, "null", OWN + "/embed/signup")
    assert not origins.may_post(cfg, "https://evil.example", PARTNER + "/")  # Origin wins over Referer
    assert not origins.may_post(cfg, "http://localhost:8001", None)
    assert not origins.may_post(cfg, None, None)


@pytest.mark.parametrize("origin, referer", [("https://evil.example", None), (None, None),
                                             ("null", "https://evil.example/page")])
def test_a_post_from_another_origin_is_refused_and_writes_nothing(embeds, client, origin, referer):
    fields = {**form_of(client, "/embed/signup"), "email": "ada@example.org"}
    response = post(client, "/embed/signup", fields, origin=origin, referer=referer)
    assert response.status_code == 403
    assert "can only be sent from the pages it was placed on" in response.get_data(as_text=True)
    assert attempts() == []


def test_a_post_from_the_site_itself_counts(embeds, client):
    fields = {**form_of(client, "/embed/signup"), "email": "own@example.org"}
    assert post(client, "/embed/signup", fields, origin=OWN).status_code == 200
    assert [a.email for a in attempts()] == ["own@example.org"]


# -- the form token -------------------------------------------------------------------------


def test_form_token_purpose_expiry_and_tampering(app):
    cfg = {**app.config, "EMBED_FORM_MAX_AGE": 7200}
    token = formtokens.make_form_token(cfg, "action:a")
    formtokens.check_form_token(cfg, token, "action:a")
    for bad, purpose, reason in ((token, "signup", "wrong-form"), (token[:-2] + "xx", "action:a", "invalid"),
                                 ("", "action:a", "invalid"), ("x" * 600, "action:a", "invalid")):
        with pytest.raises(formtokens.FormTokenError) as caught:
            formtokens.check_form_token(cfg, bad, purpose)
        assert caught.value.reason == reason
    with pytest.raises(formtokens.FormTokenError) as caught:
        formtokens.check_form_token({**cfg, "EMBED_FORM_MAX_AGE": -1}, token, "action:a")
    assert caught.value.reason == "expired"
    other_key = {**cfg, "SECRET_KEYS": ["another-key"]}
    with pytest.raises(formtokens.FormTokenError):
        formtokens.check_form_token(other_key, token, "action:a")


def test_an_expired_or_foreign_token_shows_the_form_again_with_what_was_typed(embeds, client, seeded,
                                                                              monkeypatch):
    signup_fields = form_of(client, "/embed/signup")
    fields = {**form_of(client, f"/embed/actions/{RIKERS}"), "name": "Ada Lovelace",
              "email": "ada@example.org", "form_token": signup_fields["form_token"]}  # the signup form's
    response = post(client, f"/embed/actions/{RIKERS}", fields)
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "open too long" in body and 'value="Ada Lovelace"' in body and 'value="ada@example.org"' in body
    monkeypatch.setitem(embeds.config, "EMBED_FORM_MAX_AGE", -1)
    fields = {**form_of(client, "/embed/signup"), "email": "late@example.org"}
    response = post(client, "/embed/signup", fields)
    assert response.status_code == 400 and 'value="late@example.org"' in response.get_data(as_text=True)
    assert signatures() == [] and attempts() == []


# -- the proof of work ----------------------------------------------------------------------


def test_proof_of_work_missing_wrong_or_replayed_is_refused(embeds, client):
    fields = {**form_of(client, "/embed/signup"), "email": "pow@example.org"}
    for altcha in ("", "bm90IGpzb24=", fields["altcha"][:-4] + "AAAA"):
        response = post(client, "/embed/signup", {**fields, "altcha": altcha})
        assert response.status_code == 400
        assert "check that this came from a browser" in response.get_data(as_text=True)
    assert attempts() == []
    assert post(client, "/embed/signup", fields).status_code == 200
    again = {**form_of(client, "/embed/signup"), "email": "pow@example.org", "altcha": fields["altcha"]}
    assert post(client, "/embed/signup", again).status_code == 400  # the same solution, a fresh token
    assert len(attempts()) == 1


def test_a_wrong_number_does_not_solve_the_challenge(app):
    cfg = {**app.config, "EMBED_POW_MAX_NUMBER": 500}
    payload = json.loads(__import__("base64").b64decode(pow.solve(pow.challenge(cfg))))
    payload["number"] = (payload["number"] + 1) % 501
    forged = __import__("base64").b64encode(json.dumps(payload).encode()).decode()
    with pytest.raises(pow.PowError) as caught:
        pow.verify(cfg, forged)
    assert caught.value.reason == "wrong"


def test_with_redis_down_a_solved_challenge_still_counts(app):
    """A signup is never lost to a Redis outage: the replay check is skipped, and says so in the log."""
    cfg = {**app.config, "EMBED_POW_MAX_NUMBER": 500, "REDIS_URL": "redis://127.0.0.1:9/0"}
    payload = pow.solve(pow.challenge(cfg))
    pow.verify(cfg, payload)
    pow.verify(cfg, payload)  # (no Redis to remember it: accepted again, rather than a signup lost)


# -- honeypot and rate limits ---------------------------------------------------------------


def test_the_honeypot_answers_as_usual_and_writes_nothing(embeds, client, seeded):
    fields = {**form_of(client, "/embed/signup"), "email": "bot@example.org", "website": "http://spam"}
    response = post(client, "/embed/signup", fields)
    assert response.status_code == 200 and "Check your inbox" in response.get_data(as_text=True)
    fields = {**form_of(client, f"/embed/actions/{RIKERS}"), "name": "Bot", "email": "bot@example.org",
              "website": "x"}
    response = post(client, f"/embed/actions/{RIKERS}", fields)
    assert response.status_code == 200 and "Thank you" in response.get_data(as_text=True)
    assert attempts() == [] and signatures() == []


def test_the_site_rate_limits_apply(embeds, client, seeded, monkeypatch):
    monkeypatch.setitem(embeds.config, "SUBSCRIBE_RATE_LIMIT", "2/minute")
    monkeypatch.setitem(embeds.config, "SIGN_RATE_LIMIT", "1/minute")
    codes = [post(client, "/embed/signup", {**form_of(client, "/embed/signup"), "email": f"r{i}@example.org"},
                  ip="203.0.113.77").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    codes = [post(client, f"/embed/actions/{RIKERS}",
                  {**form_of(client, f"/embed/actions/{RIKERS}"), "name": "R", "email": f"s{i}@example.org"},
                  ip="203.0.113.78").status_code for i in range(2)]
    assert codes == [200, 429]


# -- source codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("raw, code", [("nl-2026.12_a", "nl-2026.12_a"), (" partner1 ", "partner1"),
                                       ("a" * 64, "a" * 64), ("a" * 65, None), ("bad code", None),
                                       ("<script>", None), ("", None), (None, None), ("é", None)])
def test_source_code_validation(raw, code):
    assert clean_source(raw) == code


def test_embedded_signup_keeps_the_source_code_on_subscriber_and_consent(embeds, client):
    fields = form_of(client, "/embed/signup", {"source": "partner-news", "theme": "dark", "frame": "f2"})
    assert fields["source"] == "partner-news" and fields["theme"] == "dark" and fields["frame"] == "f2"
    response = post(client, "/embed/signup", {**fields, "email": "Code@Example.org"})
    assert response.status_code == 200 and "Check your inbox" in response.get_data(as_text=True)
    no_code = {**form_of(client, "/embed/signup", {"source": "not a code!"}), "email": "plain@example.org"}
    assert "source" not in no_code
    assert post(client, "/embed/signup", no_code).status_code == 200
    apply_signups()
    by_email = {s.email: s for s in db.session.scalars(sa.select(Subscriber))}
    assert by_email["Code@example.org"].source == "partner-news"
    assert by_email["plain@example.org"].source == "embed"
    consent = db.session.scalar(sa.select(ConsentRecord.source).where(
        ConsentRecord.subscriber_id == by_email["Code@example.org"].id))
    assert consent == "partner-news"


def test_embedded_signature_keeps_channel_and_code_and_its_opt_in(embeds, client, seeded):
    fields = form_of(client, f"/embed/actions/{RIKERS}", {"source": "fb-ad-3"})
    response = post(client, f"/embed/actions/{RIKERS}",
                    {**fields, "name": "Ada Lovelace", "email": "ada@example.org", "opt_in": "1"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Thank you" in body and "1</strong> signature" in body
    [row] = signatures()
    assert (row.source, row.source_code, row.name) == ("embed", "fb-ad-3", "Ada Lovelace")
    assert [(a.email, a.source) for a in attempts()] == [("ada@example.org", "fb-ad-3")]


def test_embedded_signing_errors_are_shown_in_place(embeds, client, seeded):
    fields = form_of(client, f"/embed/actions/{RIKERS}")
    response = post(client, f"/embed/actions/{RIKERS}", {**fields, "name": "", "email": "ada@example.org"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and 'aria-invalid="true"' in body and 'value="ada@example.org"' in body
    assert signatures() == []


def test_site_forms_carry_the_source_code_and_ignore_a_bad_one(app, client, seeded, ctx):
    page = client.get("/", query_string={"source": "flyer-7"}).get_data(as_text=True)
    assert '<input type="hidden" name="source" value="flyer-7">' in page
    assert f"/actions/{RIKERS}?src=action-center&amp;source=flyer-7" in page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/subscribe", data={"email": "flyer@example.org", "csrf_token": token, "source": "flyer-7"},
                environ_base={"REMOTE_ADDR": "198.51.100.31"})
    subscribe(client, "bad@example.org", ip="198.51.100.32")  # no code: the channel
    apply_signups()
    sources = dict(db.session.execute(sa.select(Subscriber.email, Subscriber.source)).all())
    assert sources == {"flyer@example.org": "flyer-7", "bad@example.org": "web-form"}

    action_page = client.get(f"/actions/{RIKERS}", query_string={"source": "flyer-7"}).get_data(as_text=True)
    assert '<input type="hidden" name="source" value="flyer-7">' in action_page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', action_page).group(1)
    for email, code in (("s1@example.org", "flyer-7"), ("s2@example.org", "<bad>")):
        response = client.post(f"/actions/{RIKERS}/sign", data={
            "csrf_token": token, "name": "S", "email": email, "source": code, "website": ""},
            environ_base={"REMOTE_ADDR": "198.51.100.33"})
        assert response.status_code == 303  # a bad code never fails the visitor
    assert [(s.email, s.source, s.source_code) for s in signatures()] == [
        ("s1@example.org", "direct", "flyer-7"), ("s2@example.org", "direct", None)]


# -- reports, exports, audiences, the staff pages -------------------------------------------


def _signature(action_id: int, email: str, code: str | None, *, counted: bool = True,
               subscriber_id: int | None = None) -> None:
    db.session.add(Signature(action_id=action_id, email=email, email_key=email, name="N", source="embed",
                             source_code=code, subscriber_id=subscriber_id,
                             confirmed_at=utcnow() if counted else None))


def test_reports_break_signatures_down_by_source_code(app, ctx, seeded):
    from alerts.actions import records
    from alerts.reports import dashboard as series

    rikers, other = db.session.scalars(sa.select(Action.id).order_by(Action.id).limit(2)).all()
    for i in range(3):
        _signature(rikers, f"p{i}@example.org", "partner-a")
    _signature(rikers, "q@example.org", "partner-b", counted=False)
    _signature(rikers, "r@example.org", None)
    _signature(other, "s@example.org", "partner-b")
    db.session.commit()
    assert series.signatures_by_source_code() == [("partner-a", 3), ("partner-b", 2), ("(no source code)", 1)]
    assert [(s.source, s.counted, s.flagged) for s in records.by_source_code(rikers)] == [
        ("partner-a", 3, 0), ("(no source code)", 1, 0), ("partner-b", 0, 1)]
    rows = [line.split(",") for line in "".join(records.export_csv(rikers)).splitlines()]
    assert rows[0][-1] == "source_code"
    assert sorted(r[-1] for r in rows[1:]) == ["", "partner-a", "partner-a", "partner-a"]  # counted ones only


def test_the_dashboard_and_the_action_page_show_the_source_codes(app, staff_client, ctx, seeded):
    rikers = db.session.scalar(sa.select(Action.id).order_by(Action.id).limit(1))
    _signature(rikers, "p@example.org", "partner-zz")
    db.session.commit()
    charts = staff_client.get("/staff/charts").get_data(as_text=True)
    assert "Signatures by source code" in charts and "partner-zz" in charts
    page = staff_client.get(f"/staff/actions/{rikers}/signatures").get_data(as_text=True)
    assert "By source code" in page and "partner-zz" in page


def test_an_audience_by_source_code_takes_signups_and_signers_with_it(app, ctx, seeded):
    from alerts import audiences

    rikers = db.session.scalar(sa.select(Action.id).order_by(Action.id).limit(1))
    people = {key: Subscriber(email=f"{key}@example.org", status="confirmed", confirmed_at=utcnow(),
                              source=src)
              for key, src in (("joined", "Flyer-7"), ("signed", "web-form"), ("neither", "web-form"))}
    db.session.add_all(people.values())
    db.session.flush()
    _signature(rikers, "signed@example.org", "flyer-7", subscriber_id=people["signed"].id)
    _signature(rikers, "neither@example.org", "other-code", subscriber_id=people["neither"].id)
    db.session.commit()
    rules = audiences.parse({"source": "flyer-7"})
    found = set(db.session.scalars(sa.select(Subscriber.email).where(*audiences.conditions(rules, []))))
    assert found == {"joined@example.org", "signed@example.org"}
    assert audiences.size(rules, []) == 2
    assert "signed through “flyer-7”" in audiences.describe(rules)


def test_staff_actions_pages_show_embed_codes_with_copy_and_preview(app, staff_client, ctx, seeded,
                                                                   monkeypatch):
    page = staff_client.get("/staff/actions").get_data(as_text=True)
    assert "No other site may show these forms yet" in page
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", (PARTNER,))
    page = staff_client.get("/staff/actions").get_data(as_text=True)
    snippet = f'<script src="{OWN}/embed.js" data-form="signup" async></script>'
    assert snippet in html.unescape(page) and 'data-copy-from="embed-signup"' in page
    assert 'src="/embed/signup" title="Preview of the embedded signup form"' in page
    assert f'data-action="{RIKERS}"' in html.unescape(page) and PARTNER in page
    rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
    edit = staff_client.get(f"/staff/actions/{rikers}/edit")
    body = edit.get_data(as_text=True)
    assert f'src="/embed/actions/{RIKERS}"' in body and 'data-copy-from="embed-action"' in body
    assert "frame-ancestors 'none'" in edit.headers["Content-Security-Policy"]
    assert "default-src 'self'" in edit.headers["Content-Security-Policy"]  # frames of this site only


def test_the_alert_report_breaks_its_signatures_down_by_source_code(app, staff_client, ctx, seeded):
    from alerts.reports import alert_report
    from tests.helpers import make_alert

    alert_id = make_alert("Act now", [RIKERS])
    rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
    for i, code in enumerate(("nl-dec", "nl-dec", "fb", None)):
        db.session.add(Signature(action_id=rikers, email=f"a{i}@example.org", email_key=f"a{i}@example.org",
                                 name="N", source="alert", alert_id=alert_id, source_code=code))
    db.session.commit()
    assert alert_report.report(alert_id)["by_source_code"] == [
        {"source_code": "nl-dec", "signatures": 2}, {"source_code": "fb", "signatures": 1}]
    page = staff_client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    assert "Signatures by source code" in page and "nl-dec" in page
