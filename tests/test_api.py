"""The REST API: tokens and scopes, every endpoint, pages, ETags, problem+json on every error,
double opt-in against documented consent, one signature per address, writes recorded, limits."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from alerts import apitokens, create_app
from alerts.extensions import db, limiter
from alerts.models import ApiToken, ApiWrite, ConsentRecord, Signature, Subscriber, utcnow
from alerts.subscribers import fields
from alerts.testing.mailcatcher import free_port
from tests.helpers import STAFF_EMAIL, add_confirmed, make_alert, post, seed_actions

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
PROBLEM = "application/problem+json"


def token(*scopes: str, name: str = "CRM sync") -> str:
    _row, plain = apitokens.create(name, list(scopes or ("read", "write")), created_by="cli")
    db.session.commit()
    return plain


def auth(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def rw(ctx) -> dict:
    return auth(token("read", "write"))


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and body["type"]
    assert "Set-Cookie" not in response.headers
    return body


# -- tokens --------------------------------------------------------------------------------


def test_no_token_unknown_token_and_malformed_header_are_401_with_www_authenticate(client, ctx):
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    auth("aa_000000000000_nothing"), auth("not-even-our-shape")):
        response = client.get("/api/v1/subscribers", headers=headers)
        is_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_differing_in_its_last_character_is_refused(client, ctx):
    good = token("read")
    assert client.get("/api/v1/subscribers", headers=auth(good)).status_code == 200
    flipped = good[:-1] + ("A" if good[-1] != "A" else "B")
    is_problem(client.get("/api/v1/subscribers", headers=auth(flipped)), 401)
    # The key id right, the secret another token's: refused too.
    other = token("read")
    mixed = good.rsplit("_", 1)[0] + "_" + other.rsplit("_", 1)[1]
    is_problem(client.get("/api/v1/subscribers", headers=auth(mixed)), 401)


def test_the_secret_is_kept_only_as_its_hash(ctx):
    plain = token("read")
    row = db.session.scalar(sa.select(ApiToken).order_by(ApiToken.id.desc()))
    secret = plain.rsplit("_", 1)[1]
    assert secret not in (row.secret_hash, row.key_id, row.name) and len(row.secret_hash) == 64


def test_revoked_token_is_401(client, ctx):
    plain = token("read")
    assert client.get("/api/v1/actions", headers=auth(plain)).status_code == 200
    row = db.session.scalar(sa.select(ApiToken).order_by(ApiToken.id.desc()))
    apitokens.revoke(row.id)
    db.session.commit()
    is_problem(client.get("/api/v1/actions", headers=auth(plain)), 401)


def test_wrong_scope_is_403(client, ctx):
    reader, writer = auth(token("read")), auth(token("write"))
    body = is_problem(client.post("/api/v1/subscribers", headers=reader,
                                  json={"email": "a@example.org"}), 403)
    assert "write" in body["detail"]
    is_problem(client.get("/api/v1/subscribers", headers=writer), 403)
    # Counting an audience is a POST that only reads: the read scope does.
    assert client.post("/api/v1/audiences/count", headers=reader, json={}).status_code == 200
    is_problem(client.post("/api/v1/audiences/count", headers=writer, json={}), 403)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_last_use_is_written_at_most_once_a_minute(client, ctx):
    plain = token("read")
    row_id = db.session.scalar(sa.select(ApiToken.id).order_by(ApiToken.id.desc()))

    def last_used():
        db.session.expire_all()
        return db.session.get(ApiToken, row_id).last_used_at

    assert last_used() is None
    client.get("/api/v1/actions", headers=auth(plain))
    first = last_used()
    assert first is not None
    client.get("/api/v1/actions", headers=auth(plain))
    assert last_used() == first
    db.session.execute(sa.update(ApiToken).where(ApiToken.id == row_id)
                       .values(last_used_at=utcnow() - timedelta(seconds=61)))
    db.session.commit()
    client.get("/api/v1/actions", headers=auth(plain))
    assert last_used() > first


def test_cli_makes_lists_and_revokes_tokens(app, ctx):
    runner = app.test_cli_runner()
    made = runner.invoke(args=["api-token", "create", "--name", "CiviCRM", "--scope", "read",
                               "--scope", "write"])
    assert made.exit_code == 0, made.output
    plain = made.output.strip()
    assert plain.startswith("aa_") and "\n" not in plain  # the token alone
    assert apitokens.authenticate(plain).scopes == {"read", "write"}
    listed = runner.invoke(args=["api-token", "list"])
    assert "CiviCRM" in listed.output and "read write" in listed.output and plain not in listed.output
    row_id = apitokens.authenticate(plain).id
    assert runner.invoke(args=["api-token", "revoke", str(row_id)]).exit_code == 0
    assert apitokens.authenticate(plain) is None
    assert runner.invoke(args=["api-token", "create", "--name", "x", "--scope", "admin"]).exit_code == 2
    assert runner.invoke(args=["api-token", "revoke", "999999"]).exit_code == 1


def test_rate_limit_per_token_is_a_429_problem_with_retry_after(app, client, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "3/minute")
    one, two = auth(token("read")), auth(token("read"))
    codes = [client.get("/api/v1/actions", headers=one).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    response = client.get("/api/v1/actions", headers=one)
    is_problem(response, 429)
    assert int(response.headers["Retry-After"]) >= 1
    assert client.get("/api/v1/actions", headers=two).status_code == 200  # another token: its own count


# -- subscribers -------------------------------------------------------------------------------


def test_documented_consent_confirms_at_once_with_a_record_naming_the_token(client, rw):
    response = client.post("/api/v1/subscribers", headers=rw, json={
        "email": "Ada@Example.ORG", "first_name": "Ada", "last_name": "Lovelace", "postal_code": "10001",
        "language": "es", "source": "crm-import", "consent": "documented"})
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == "confirmed" and body["email"] == "Ada@example.org"
    assert (body["first_name"], body["last_name"], body["postal_code"], body["language"]) == (
        "Ada", "Lovelace", "10001", "es")
    assert "Set-Cookie" not in response.headers
    token_id = db.session.scalar(sa.select(ApiToken.id).order_by(ApiToken.id.desc()))
    [record] = db.session.scalars(sa.select(ConsentRecord).where(ConsentRecord.subscriber_id == body["id"]))
    assert (record.event, record.source) == ("confirm:documented", f"api-token:{token_id}")
    # The same address again: the same row, 200, not a second one.
    again = client.post("/api/v1/subscribers", headers=rw, json={"email": "ada@example.org",
                                                                  "consent": "documented"})
    assert again.status_code == 200 and again.get_json()["id"] == body["id"]


def test_documented_consent_welcomes_only_when_asked(app, client, rw, monkeypatch):
    from alerts import queueing, tasknames
    from alerts.subscribers import welcome

    published: list[tuple] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: published.append((name, tuple(args))))
    quiet = client.post("/api/v1/subscribers", headers=rw, json={"email": "q@example.org",
                                                                  "consent": "documented"}).get_json()
    for minutes in (3, 30, 59):  # the sweep of lost welcomes, any time within its hour: nobody
        assert welcome.unsent(now=utcnow() + timedelta(minutes=minutes)) == []
    assert published == []
    asked = client.post("/api/v1/subscribers", headers=rw, json={"email": "w@example.org",
                                                                  "consent": "documented", "welcome": True})
    assert asked.status_code == 201
    assert published == [(tasknames.SEND_WELCOME, (asked.get_json()["id"],))]
    assert quiet["id"] != asked.get_json()["id"]
    body = is_problem(client.post("/api/v1/subscribers", headers=rw, json={"email": "x@example.org",
                                                                           "welcome": True}), 422)
    assert "welcome" in body["errors"]


def test_confirm_first_is_the_default_and_mails_the_confirmation(client, rw, smtp, celery_worker):
    response = client.post("/api/v1/subscribers", headers=rw, json={"email": "newcomer@example.org"})
    assert response.status_code == 201
    assert response.get_json()["status"] == "pending"
    [msg] = smtp.handler.wait_for(1, timeout=20)
    assert msg.rcpt_tos == ["newcomer@example.org"]
    assert msg.message["Subject"].startswith("Confirm")


def test_documented_consent_never_overrides_an_unsubscribe(client, rw):
    made = client.post("/api/v1/subscribers", headers=rw, json={"email": "left@example.org",
                                                                 "consent": "documented"}).get_json()
    assert client.post(f"/api/v1/subscribers/{made['id']}/unsubscribe", headers=rw).get_json()[
        "status"] == "unsubscribed"
    body = is_problem(client.post("/api/v1/subscribers", headers=rw, json={
        "email": "left@example.org", "consent": "documented"}), 409)
    assert "unsubscribed" in body["detail"]
    assert db.session.get(Subscriber, made["id"]).status == "unsubscribed"


@pytest.mark.parametrize(("payload", "field"), [
    ({"email": "x@example.org", "fields": {"favourite_colour": "red"}}, "fields.favourite_colour"),
    ({"email": "x@example.org", "nickname": "X"}, "nickname"),
    ({"email": "x@example.org", "language": "fr"}, "language"),
    ({"email": "x@example.org", "first_name": "x" * 101}, "first_name"),
    ({"email": "x@example.org", "postal_code": "<b>"}, "postal_code"),
    ({"email": "not an address"}, "email"),
    ({"email": "x@example.org", "consent": "implied"}, "consent"),
    ({"email": "x@example.org", "source": "has space"}, "source"),
    ({}, "email"),
])
def test_a_field_not_accepted_is_a_422_naming_it_and_nothing_is_kept(client, rw, payload, field):
    body = is_problem(client.post("/api/v1/subscribers", headers=rw, json=payload), 422)
    assert field in body["errors"], body
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_get_patch_unsubscribe_and_etag(client, rw):
    made = client.post("/api/v1/subscribers", headers=rw, json={"email": "p@example.org",
                                                                 "consent": "documented"}).get_json()
    path = f"/api/v1/subscribers/{made['id']}"
    got = client.get(path, headers=rw)
    assert got.status_code == 200 and got.get_json() == made
    etag = got.headers["ETag"]
    not_modified = client.get(path, headers={**rw, "If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.data == b""
    patched = client.patch(path, headers=rw, json={"first_name": "Pat", "language": "en", "fields": {}})
    assert patched.status_code == 200 and patched.get_json()["first_name"] == "Pat"
    changed = client.get(path, headers={**rw, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    is_problem(client.patch(path, headers=rw, json={"email": "other@example.org"}), 422)
    gone = client.post(f"{path}/unsubscribe", headers=rw)
    assert gone.get_json()["status"] == "unsubscribed"
    assert client.post(f"{path}/unsubscribe", headers=rw).status_code == 200  # idempotent


def test_erase_removes_the_person_and_keeps_the_address_suppressed(client, rw):
    made = client.post("/api/v1/subscribers", headers=rw, json={"email": "e@example.org",
                                                                 "consent": "documented"}).get_json()
    path = f"/api/v1/subscribers/{made['id']}"
    response = client.delete(path, headers=rw)
    assert response.status_code == 204 and response.data == b""
    assert db.session.get(Subscriber, made["id"]) is None
    is_problem(client.get(path, headers=rw), 404)
    is_problem(client.delete(path, headers=rw), 404)
    body = is_problem(client.post("/api/v1/subscribers", headers=rw, json={"email": "e@example.org",
                                                                           "consent": "documented"}), 409)
    assert "suppressed" in body["detail"]


def test_every_write_is_recorded_with_its_token(client, rw):
    token_id = db.session.scalar(sa.select(ApiToken.id).order_by(ApiToken.id.desc()))
    made = client.post("/api/v1/subscribers", headers=rw, json={"email": "w@example.org",
                                                                 "consent": "documented"}).get_json()
    client.patch(f"/api/v1/subscribers/{made['id']}", headers=rw, json={"last_name": "W"})
    client.post(f"/api/v1/subscribers/{made['id']}/unsubscribe", headers=rw)
    client.delete(f"/api/v1/subscribers/{made['id']}", headers=rw)
    client.get("/api/v1/subscribers", headers=rw)  # a read: not recorded
    client.post("/api/v1/subscribers", headers=rw, json={"email": "bad"})  # refused: not recorded
    rows = db.session.execute(sa.select(ApiWrite.token_id, ApiWrite.method, ApiWrite.path,
                                        ApiWrite.object_kind, ApiWrite.object_id).order_by(ApiWrite.id)).all()
    path = f"/api/v1/subscribers/{made['id']}"
    assert [tuple(r) for r in rows] == [
        (token_id, "POST", "/api/v1/subscribers", "subscriber", str(made["id"])),
        (token_id, "PATCH", path, "subscriber", str(made["id"])),
        (token_id, "POST", f"{path}/unsubscribe", "subscriber", str(made["id"])),
        (token_id, "DELETE", path, "subscriber", str(made["id"])),
    ]


# -- pages ---------------------------------------------------------------------------------------


def _walk(client, headers, url: str) -> list[dict]:
    items, pages = [], 0
    while url:
        parts = urlsplit(url)
        response = client.get(parts.path + ("?" + parts.query if parts.query else ""), headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        items += body["items"]
        url = body["next"]
        pages += 1
        assert pages < 100
    return items


def test_a_walk_through_the_pages_returns_each_row_once(client, rw):
    add_confirmed(23, prefix="walk")
    db.session.add(Subscriber(email="pending@example.org", status="pending"))
    db.session.commit()
    everyone = _walk(client, rw, "/api/v1/subscribers?limit=5")
    ids = [s["id"] for s in everyone]
    assert len(ids) == 24 and len(set(ids)) == 24 and ids == sorted(ids)
    confirmed = _walk(client, rw, "/api/v1/subscribers?limit=4&status=confirmed")
    assert len(confirmed) == 23 and {s["status"] for s in confirmed} == {"confirmed"}
    [one] = _walk(client, rw, "/api/v1/subscribers?email=WALK00003@example.org")
    assert one["email"].lower() == "walk00003@example.org"
    later = _walk(client, rw, "/api/v1/subscribers?created_after=2999-01-01T00:00:00%2B00:00")
    assert later == []


def test_limit_and_cursor_outside_their_range_are_problems(client, rw):
    for query, field in (("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"),
                         ("status=maybe", "status"), ("created_after=yesterday", "created_after"),
                         ("after=garbage", "after"), ("after=-1", "after"), (f"after={2**31}", "after")):
        body = is_problem(client.get(f"/api/v1/subscribers?{query}", headers=rw), 422)
        assert field in body["errors"], (query, body)


# -- actions, signatures, alerts, audiences -----------------------------------------------------


def test_actions_and_a_signature_taken_elsewhere_counts_once(client, rw):
    seed_actions()
    actions = client.get("/api/v1/actions?limit=500", headers=rw).get_json()["items"]
    assert RIKERS in {a["slug"] for a in actions}
    entry = {"email": "Signer@Example.org", "name": "Sam Signer", "postal_code": "10001", "source": "paper"}
    first = client.post(f"/api/v1/actions/{RIKERS}/signatures", headers=rw, json=entry)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = client.post(f"/api/v1/actions/{RIKERS}/signatures", headers=rw,
                        json={**entry, "email": "signer@example.org"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Signature)) == 1
    listed = client.get(f"/api/v1/actions/{RIKERS}/signatures", headers=rw).get_json()
    assert [(s["name"], s["source"], s["source_code"]) for s in listed["items"]] == [
        ("Sam Signer", "api", "paper")]
    assert listed["next"] is None
    listed_actions = client.get("/api/v1/actions", headers=rw).get_json()["items"]
    counted = {a["slug"]: a["signatures"] for a in listed_actions}
    assert counted[RIKERS] == 1
    is_problem(client.post(f"/api/v1/actions/{RIKERS}/signatures", headers=rw,
                           json={"email": "x@example.org", "name": "X", "postal_code": "<>"}), 422)
    body = is_problem(client.post(f"/api/v1/actions/{RIKERS}/signatures", headers=rw,
                                  json={**entry, "email": "y@example.org", "source": "s" * 65}), 422)
    assert "source" in body["errors"]  # refused, never cut to fit
    is_problem(client.post("/api/v1/actions/no-such-action/signatures", headers=rw, json=entry), 404)
    is_problem(client.get("/api/v1/actions/no-such-action/signatures", headers=rw), 404)


def test_alerts_list_status_and_report_match_the_cli(app, client, rw):
    seed_actions()
    alert_id = make_alert("Act now", [RIKERS])
    items = client.get("/api/v1/alerts", headers=rw).get_json()["items"]
    assert [(a["id"], a["state"]) for a in items] == [(alert_id, "draft")]
    runner = app.test_cli_runner()
    status = client.get(f"/api/v1/alerts/{alert_id}", headers=rw).get_json()
    cli_status = json.loads(runner.invoke(args=["alert", "status", str(alert_id), "--json"]).output)
    assert status.keys() == cli_status.keys() and status["state"] == "draft"
    report = client.get(f"/api/v1/alerts/{alert_id}/report", headers=rw).get_json()
    cli_report = json.loads(runner.invoke(args=["alert", "report", str(alert_id), "--json"]).output)
    assert report == cli_report
    is_problem(client.get("/api/v1/alerts/999999", headers=rw), 404)
    is_problem(client.get("/api/v1/alerts/999999/report", headers=rw), 404)


def test_audience_count_uses_the_audience_rules(client, rw):
    add_confirmed(3, prefix="aud")
    body = client.post("/api/v1/audiences/count", headers=rw, json={}).get_json()
    assert body["count"] == 3 and body["description"]
    none = client.post("/api/v1/audiences/count", headers=rw, json={"joined_after": "2999-01-01"}).get_json()
    assert none["count"] == 0
    is_problem(client.post("/api/v1/audiences/count", headers=rw, json={"joined_after": "soon"}), 422)
    is_problem(client.post("/api/v1/audiences/count", headers=rw, json={"everyone": True}), 422)


def test_audience_count_selects_by_what_people_told_us(app, client, rw):
    emails = add_confirmed(3, prefix="told")
    with app.app_context():
        fields.define("borough", "Borough", "choice", ["Bronx", "Queens"])
        found = db.session.scalars(sa.select(Subscriber).where(Subscriber.email.in_(emails)))
        subs = {s.email: s for s in found}
        ana, ben, _ = (subs[e] for e in emails)
        ana.first_name, ana.postal_code = "Ana", "10451"
        ben.postal_code = "11101"
        fields.set_values(ben.id, {"borough": ["Queens"]})
        db.session.commit()

    def count(rules: dict) -> int:
        resp = client.post("/api/v1/audiences/count", headers=rw, json=rules)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["count"]

    assert count({"postal_prefixes": ["104"]}) == 1
    assert count({"postal_prefixes": ["104", "111"]}) == 2
    assert count({"has_first_name": True}) == 1 and count({"has_first_name": False}) == 2
    assert count({"field_values": {"borough": ["Queens", "Bronx"]}}) == 1
    is_problem(client.post("/api/v1/audiences/count", headers=rw,
                           json={"field_values": {"shoe_size": ["9"]}}), 422)


# -- errors ----------------------------------------------------------------------------------------


def test_every_error_under_the_api_is_problem_json(app, client, rw, monkeypatch):
    is_problem(client.get("/api/v1/no-such-thing", headers=rw), 404)
    is_problem(client.get("/api/v2/subscribers"), 404)
    response = client.put("/api/v1/subscribers", headers=rw)
    is_problem(response, 405)
    assert "GET" in response.headers["Allow"]
    body = is_problem(client.post("/api/v1/subscribers", headers={**rw, "Content-Type": "application/json"},
                                  data="{not json"), 400)
    assert "JSON" in body["detail"]
    is_problem(client.get("/api/v1/subscribers?source=a%00b", headers=rw), 400)
    is_problem(client.post("/api/v1/subscribers", headers=rw, json={"email": "a\x00@example.org"}), 400)
    is_problem(client.get("/api/v1/subscribers/99999999999999999999", headers=rw), 404)
    # Past an INTEGER column's range (int4 on PostgreSQL): a 404, never the database's error.
    is_problem(client.get(f"/api/v1/subscribers/{2**31}", headers=rw), 404)
    is_problem(client.get(f"/api/v1/alerts/{2**31}/report", headers=rw), 404)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 1000)
    body = is_problem(client.post("/api/v1/subscribers", headers=rw,
                                  json={"email": "big@example.org", "first_name": "x" * 5000}), 413)
    assert "at most" in body["detail"]


def test_api_writes_need_no_csrf_token_and_set_no_cookie(app, client, rw):
    monkeypatch_csrf = app.config.get("WTF_CSRF_ENABLED", True)
    assert monkeypatch_csrf  # CSRF is on for the forms, and the API is exempt
    response = client.post("/api/v1/subscribers", headers=rw, json={"email": "c@example.org",
                                                                     "consent": "documented"})
    assert response.status_code == 201 and "Set-Cookie" not in response.headers


def test_openapi_document_and_its_reference_page(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    for path in ("/api/v1/subscribers", "/api/v1/subscribers/{subscriber_id}",
                 "/api/v1/subscribers/{subscriber_id}/unsubscribe", "/api/v1/actions",
                 "/api/v1/actions/{slug}", "/api/v1/actions/{slug}/signatures", "/api/v1/alerts",
                 "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/report", "/api/v1/audiences/count"):
        assert path in spec["paths"], path
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "POST /api/v1/subscribers" in html and "<script" not in html.split("</head>")[1]


# -- the staff page ------------------------------------------------------------------------------

TOKEN_SHOWN = re.compile(r'id="token-value" class="input token-value" value="(aa_[^"]+)"')


def test_staff_make_a_token_see_it_once_use_it_and_revoke_it(client, staff_client):
    page = staff_client.get("/staff/api-tokens")
    assert page.status_code == 200 and "No tokens yet" in page.get_data(as_text=True)
    made = post(staff_client, "/staff/api-tokens", {"name": "CiviCRM sync", "scope": ["read", "write"]},
                page="/staff/api-tokens")
    assert made.status_code == 200
    html = made.get_data(as_text=True)
    plain = TOKEN_SHOWN.search(html).group(1)
    assert "shown this once" in html and made.headers["Cache-Control"] == "no-store"
    listing = staff_client.get("/staff/api-tokens").get_data(as_text=True)
    assert plain not in listing and "CiviCRM sync" in listing and "read write" in listing
    assert STAFF_EMAIL in listing and "never" in listing
    assert client.get("/api/v1/actions", headers=auth(plain)).status_code == 200
    assert "never" not in staff_client.get("/staff/api-tokens").get_data(as_text=True).split("<tbody>")[1]
    with staff_client.application.app_context():
        token_id = db.session.scalar(sa.select(ApiToken.id).where(ApiToken.name == "CiviCRM sync"))
    revoked = post(staff_client, f"/staff/api-tokens/{token_id}/revoke", {}, page="/staff/api-tokens")
    assert revoked.status_code == 303
    is_problem(client.get("/api/v1/actions", headers=auth(plain)), 401)


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "", "scope": ["read"]}, "needs a name"),
    ({"name": "x", "scope": []}, "at least one scope"),
    ({"name": "x", "scope": ["admin"]}, "Unknown scope"),
])
def test_staff_token_form_refuses_what_it_cannot_make(staff_client, form, message):
    answer = post(staff_client, "/staff/api-tokens", form, page="/staff/api-tokens")
    assert answer.status_code == 400 and message in answer.get_data(as_text=True)
    assert "aa_" not in answer.get_data(as_text=True)


def test_staff_page_needs_a_login_and_revoking_needs_a_post(client, ctx):
    assert client.get("/staff/api-tokens").status_code == 302
    assert client.post("/staff/api-tokens", data={"name": "x", "scope": "read"}).status_code in (400, 401)
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 0


@pytest.fixture
def dead_app(app):
    """The same app pointed at a database nobody listens on (as in test_database_outage)."""
    other = create_app({
        **{k: app.config[k] for k in ("SECRET_KEY", "SECRET_KEYS", "REDIS_URL", "SMTP_URL", "BASE_URL",
                                      "ORG_NAME", "ORG_POSTAL_ADDRESS", "CELERY_TASK_QUEUE",
                                      "RATELIMIT_KEY_PREFIX")},
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": f"postgresql+psycopg://a:b@127.0.0.1:{free_port()}/a",
    })
    yield other
    app.extensions["celery"].set_default()
    app.extensions["celery"].set_current()
    limiter.init_app(app)


@pytest.mark.commits  # its own app and engine: not the rolled-back session of the suite's
def test_database_down_is_a_503_problem_with_retry_after(dead_app):
    response = dead_app.test_client().get("/api/v1/subscribers", headers=auth("aa_0123456789ab_secret"))
    body = is_problem(response, 503)
    assert response.headers["Retry-After"] and "database" in body["title"]


def test_writes_through_the_api_raise_the_same_webhook_events_as_the_pages(app, client, rw):
    """A documented subscriber is subscriber.confirmed, a signature signature.created: the API
    reaches the CRM's webhooks as a page or an import does."""
    from alerts import webhooks
    from alerts.models import WebhookMessage
    from alerts.webhooks import endpoints, outbox

    seed_actions()
    app.config["WEBHOOK_ALLOW_INSECURE"] = True
    try:
        endpoints.add("http://127.0.0.1:9/hook", webhooks.EVENT_TYPES, by="test")
        db.session.commit()
        outbox.forget()
        added = client.post("/api/v1/subscribers", headers=rw, json={"email": "ada@example.org",
                                                                      "consent": "documented"})
        signed = client.post(f"/api/v1/actions/{RIKERS}/signatures", headers=rw,
                             json={"email": "sam@example.org", "name": "Sam"})
        assert (added.status_code, signed.status_code) == (201, 201)
        sent = [(m.event_type, json.loads(m.payload)["data"]["id"])
                for m in db.session.scalars(sa.select(WebhookMessage).order_by(WebhookMessage.id))]
        assert sent == [(webhooks.SUBSCRIBER_CONFIRMED, added.get_json()["id"]),
                        (webhooks.SIGNATURE_CREATED, signed.get_json()["id"])]
    finally:
        app.config["WEBHOOK_ALLOW_INSECURE"] = False
        outbox.forget()
