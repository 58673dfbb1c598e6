"""Names and fields from every way in: the signup forms (the site's and the embedded one), a
signature, the API; and the rule that an unverified signup never changes a known person."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from alerts.actions import signing
from alerts.extensions import db
from alerts.models import Action, SignupAttempt, Subscriber, SubscriberStatus, utcnow
from alerts.subscribers import confirmations, fields, subscriptions
from tests.helpers import add_confirmed, apply_signups, confirm_token_for, csrf_token, seed_actions
from tests.test_api import auth, is_problem, token
from tests.test_embeds import PARTNER, form_of
from tests.test_embeds import post as embed_post
from tests.test_signing import PLEDGE, sign

IP = "198.51.100.61"


def signup(client, email: str, **typed):
    """Post the site's signup form with the signup fields typed (not yet decided by the task)."""
    data = {"email": email, "website": "", "csrf_token": csrf_token(client), **typed}
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": IP})


def subscriber(email: str) -> Subscriber | None:
    db.session.rollback()
    return db.session.scalar(sa.select(Subscriber).where(Subscriber.email_key == email.lower()))


def attempts() -> list[SignupAttempt]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(SignupAttempt)))


def error_of(body: str, field_id: str) -> str:
    """The message shown next to a field: the element its aria-describedby names."""
    field = re.search(rf'<(?:input|select)[^>]*\bid="{field_id}"[^>]*>', body)
    assert field, f"no field {field_id}"
    tag = field.group(0)
    assert 'aria-invalid="true"' in tag and f'aria-describedby="{field_id}-error"' in tag, tag
    message = re.search(rf'<p class="[a-z-]+" id="{field_id}-error" role="alert">([^<]*)</p>', body)
    assert message, f"no message for {field_id}"
    return message.group(1)


def value_of(body: str, field_id: str) -> str:
    tag = re.search(rf'<input[^>]*\bid="{field_id}"[^>]*>', body).group(0)
    return re.search(r'value="([^"]*)"', tag).group(1)


def test_a_signup_keeps_first_name_and_postcode_once_its_task_runs(client, ctx):
    page = client.get("/").get_data(as_text=True)
    assert 'autocomplete="given-name"' in page and 'autocomplete="postal-code"' in page
    assert "First name <span class=\"optional\">(optional)</span>" in page
    resp = signup(client, "ana@example.org", first_name="  Ana  María ", postal_code="10001")
    assert resp.status_code == 303
    [attempt] = attempts()
    assert attempt.profile == {"first_name": "Ana María", "postal_code": "10001"}
    assert subscriber("ana@example.org") is None  # decided by the task, as for every signup
    apply_signups()
    sub = subscriber("ana@example.org")
    assert (sub.status, sub.first_name, sub.postal_code, sub.pending_profile) == (
        "pending", "Ana María", "10001", None)


def test_bad_values_are_a_400_with_each_message_by_its_field_and_what_was_typed_kept(client, ctx):
    fields.change("phone", label="Phone", required=False, on_signup=True)
    fields.define("age", "Age", "number", on_signup=True)
    db.session.commit()
    resp = signup(client, "bo@example.org", first_name="Bo", postal_code="10$01", phone="12", field_age="old")
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert "letters, digits, spaces and hyphens" in error_of(body, "signup-postal_code")
    assert "phone number" in error_of(body, "signup-phone")
    assert error_of(body, "signup-age") == "Age is a number, like 12 or 3.5"
    assert 'id="signup-first_name"' in body and 'id="signup-first_name-error"' not in body
    assert [value_of(body, i) for i in ("email", "signup-first_name", "signup-postal_code", "signup-phone",
                                         "signup-age")] == ["bo@example.org", "Bo", "10$01", "12", "old"]
    # the first field at fault takes the focus; signup.js does it after the jump to #advocate
    assert body.count(" autofocus") == 1 and re.search(r'id="signup-postal_code"[^>]* autofocus', body)
    assert "signup.js" in body
    assert attempts() == []  # nothing recorded until it can be kept
    ok = signup(client, "bo@example.org", first_name="Bo", postal_code="10001", phone="(212) 555-0100",
                field_age="1,200")
    assert ok.status_code == 303
    apply_signups()
    sub = subscriber("bo@example.org")
    assert (sub.phone, fields.values_for([sub.id])[sub.id]) == ("+12125550100", {"age": ["1200"]})


def test_an_address_error_and_a_field_error_are_shown_together(client, ctx):
    resp = signup(client, "not an address", first_name="Cy", postal_code="1@")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert 'id="email-error"' in body and error_of(body, "signup-postal_code")
    assert body.count(" autofocus") == 1 and re.search(r'id="email"[^>]*aria-invalid="true"', body)
    assert value_of(body, "signup-first_name") == "Cy"


def test_a_required_custom_field_is_asked_for_and_each_kind_is_drawn(client, ctx):
    fields.define("district", "School district", "choice", ["District 1", "District 2"], required=True)
    fields.define("topics_of_interest", "Interests", "choices", ["Schools", "Health"], on_signup=True)
    fields.define("volunteer", "I want to volunteer", "checkbox", on_signup=True)
    fields.define("born", "Birthday", "date", on_signup=True)
    db.session.commit()
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'<select id="signup-district" name="field_district" required>', page)
    assert 'School district <span class="required">(required)</span>' in page
    assert "<legend>Interests <span class=\"optional\">(optional)</span></legend>" in page
    assert page.count('name="field_topics_of_interest"') == 2
    assert re.search(r'type="checkbox" id="signup-volunteer" name="field_volunteer" value="yes"', page)
    assert re.search(r'id="signup-born" name="field_born" value=""\s*type="date"', page)
    missing = signup(client, "di@example.org", field_topics_of_interest=["Health"], field_volunteer="yes")
    body = missing.get_data(as_text=True)
    assert missing.status_code == 400
    assert error_of(body, "signup-district") == "School district is required"
    assert re.search(r'value="Health" checked', body) and not re.search(r'value="Schools" checked', body)
    assert re.search(r'id="signup-volunteer"[^>]* checked', body)
    chosen = signup(client, "di@example.org", field_district="District 2",
                    field_topics_of_interest=["Health", "Schools"], field_volunteer="yes",
                    field_born="2001-02-03")
    assert chosen.status_code == 303
    apply_signups()
    sub = subscriber("di@example.org")
    kept = fields.values_for([sub.id])[sub.id]
    assert sorted(kept.pop("topics_of_interest")) == ["Health", "Schools"]
    assert kept == {"district": ["District 2"], "volunteer": ["yes"], "born": ["2001-02-03"]}


def test_a_new_signup_never_changes_a_confirmed_persons_name(client, ctx, smtp):
    [email] = add_confirmed(1, prefix="known")
    sub = subscriber(email)
    sub.first_name, sub.postal_code = "Ana", None
    db.session.commit()
    fresh = signup(client, "stranger@example.org", first_name="Dear idiot")
    known = signup(client, email, first_name="Dear idiot", postal_code="666")
    assert fresh.status_code == known.status_code == 303
    assert fresh.headers["Location"] == known.headers["Location"]  # the same answer
    assert len(attempts()) == 2  # the same steps: one row each
    assert apply_signups() == [subscriber("stranger@example.org").id]  # no link for a confirmed one
    sub = subscriber(email)
    assert (sub.first_name, sub.postal_code, sub.pending_profile) == ("Ana", None, None)


def test_a_known_pending_address_keeps_what_was_typed_until_its_owner_confirms_and_says_so(
        app, client, ctx, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN_SECONDS", 0)
    signup(client, "una@example.org")
    apply_signups()
    signup(client, "una@example.org", first_name="Una <b>", postal_code="E1 6AN")
    apply_signups()
    sub = subscriber("una@example.org")
    assert (sub.first_name, sub.postal_code) == (None, None)  # not until its owner says so
    assert sub.pending_profile == {"first_name": "Una <b>", "postal_code": "E1 6AN"}
    # The confirmation email never carries what was typed (anyone can type anything).
    smtp.handler.messages.clear()
    assert confirmations.send_confirmation(sub.id)
    [mail] = smtp.handler.wait_for(1, timeout=20)
    assert "Una" not in mail.message.as_string() and "E1 6AN" not in mail.message.as_string()
    path = f"/confirm/{confirm_token_for(sub.id, sub.confirm_nonce)}"
    page = client.get(path).get_data(as_text=True)
    assert "<dd>Una &lt;b&gt;</dd>" in page and "<dd>E1 6AN</dd>" in page
    assert re.search(r'<input type="checkbox" name="save_details" value="1">', page)  # not ticked
    assert client.post(path, data={"save_details": "1"}).status_code == 200
    sub = subscriber("una@example.org")
    assert (sub.status, sub.first_name, sub.postal_code, sub.pending_profile) == (
        "confirmed", "Una <b>", "E1 6AN", None)


def test_details_its_owner_does_not_tick_are_dropped_at_confirmation(app, client, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN_SECONDS", 0)
    sub = Subscriber(email="vi@example.org", status=SubscriberStatus.UNSUBSCRIBED, first_name="Vi",
                     unsubscribed_at=utcnow())
    db.session.add(sub)
    db.session.commit()
    signup(client, "vi@example.org", first_name="Not Vi")
    apply_signups()
    sub = subscriber("vi@example.org")
    assert sub.status == "unsubscribed" and sub.pending_profile == {"first_name": "Not Vi"}
    assert client.post(f"/confirm/{confirm_token_for(sub.id, sub.confirm_nonce)}").status_code == 200
    sub = subscriber("vi@example.org")
    assert (sub.status, sub.first_name, sub.pending_profile) == ("confirmed", "Vi", None)


def test_the_honeypot_still_answers_as_usual_and_keeps_nothing(client, ctx):
    data = {"email": "bot@example.org", "website": "http://spam", "first_name": "Bot",
            "csrf_token": csrf_token(client)}
    assert client.post("/subscribe", data=data).status_code == 303
    assert attempts() == []


# -- the embedded form ------------------------------------------------------------------------


@pytest.fixture
def embeds(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "EMBED_ORIGINS", (PARTNER,))
    monkeypatch.setitem(app.config, "EMBED_POW_MAX_NUMBER", 2000)
    return app


def test_the_embedded_signup_asks_for_the_fields_and_shows_their_errors_in_place(embeds, client):
    page = client.get("/embed/signup").get_data(as_text=True)
    assert 'id="first_name" name="first_name"' in page and 'autocomplete="postal-code"' in page
    bad = embed_post(client, "/embed/signup", {**form_of(client, "/embed/signup"), "email": "em@example.org",
                                               "website": "", "first_name": "Em", "postal_code": "#1"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400
    assert "letters, digits" in error_of(body, "postal_code")
    assert value_of(body, "first_name") == "Em" and value_of(body, "email") == "em@example.org"
    assert attempts() == []
    ok = embed_post(client, "/embed/signup", {**form_of(client, "/embed/signup"), "email": "em@example.org",
                                              "website": "", "first_name": "Em", "postal_code": "N1"})
    assert ok.status_code == 200 and "Check your inbox" in ok.get_data(as_text=True)
    apply_signups()
    sub = subscriber("em@example.org")
    assert (sub.first_name, sub.postal_code, sub.source) == ("Em", "N1", "embed")


# -- signatures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "split"), [
    ("Ana", ("Ana", None)), ("Ana García", ("Ana", "García")),
    ("  Ana  María   García ", ("Ana María", "García")), ("", (None, None)),
])
def test_a_signatures_name_is_split_at_its_last_word(name, split):
    assert signing.split_name(name) == split


def _pledge_asks_confirmation() -> None:
    seed_actions()
    db.session.execute(sa.update(Action).where(Action.slug == PLEDGE).values(requires_confirmation=True))
    db.session.commit()


def test_a_confirmed_signature_fills_an_empty_name_and_never_overwrites(client, ctx):
    _pledge_asks_confirmation()
    empty, named = add_confirmed(2, prefix="signer")
    sub = subscriber(named)
    sub.first_name = "Robbie"
    db.session.commit()
    sign(client, PLEDGE, name="Ana María García", email=empty, postal_code="10001")
    sign(client, PLEDGE, name="Robert Smith", email=named, postal_code="")
    assert subscriber(empty).first_name is None  # not before the address is proven
    for signature in db.session.scalars(sa.select(signing.Signature)):
        assert client.post(f"/actions/confirm/{signing.make_confirm_token(signature.id)}").status_code == 200
    a, b = subscriber(empty), subscriber(named)
    assert (a.first_name, a.last_name, a.postal_code) == ("Ana María", "García", "10001")
    assert (b.first_name, b.last_name, b.postal_code) == ("Robbie", "Smith", None)


def test_an_unverified_signature_writes_nothing_to_someone_elses_profile(client, ctx):
    seed_actions()  # the pledge counts a signature at once: its address is not proven
    [email] = add_confirmed(1, prefix="victim")
    resp = sign(client, PLEDGE, name="Dear Idiot", email=email, postal_code="666")
    assert resp.status_code in (200, 303)
    sub = subscriber(email)
    assert (sub.first_name, sub.last_name, sub.postal_code) == (None, None, None)


def test_a_signature_from_an_alerts_reference_fills_its_subscribers_empty_name(ctx):
    seed_actions()
    [email] = add_confirmed(1, prefix="reader")
    sub = subscriber(email)
    sub.postal_code = "E1"
    db.session.commit()
    action = signing.signable(PLEDGE)
    signer = signing.Signer(delivery_id=1, alert_id=1, subscriber_id=sub.id, email=email, name="",
                            postal_code=None)
    req = signing.subscriptions.Request(ip=IP, user_agent="test")
    signing.sign(action, signing.Entry(name="Kim Lee", postal_code="N1"), signer=signer,
                 where=signing.Attribution(signing.ALERT, None, None), request=req)
    db.session.commit()
    sub = subscriber(email)
    assert (sub.first_name, sub.last_name, sub.postal_code) == ("Kim", "Lee", "E1")


def test_joining_the_list_from_a_signature_carries_its_name_to_a_new_subscriber(client, ctx):
    seed_actions()
    sign(client, PLEDGE, name="Lee Chan", email="lee@example.org", postal_code="N1", opt_in="1")
    apply_signups()
    sub = subscriber("lee@example.org")
    assert (sub.status, sub.first_name, sub.last_name, sub.postal_code) == ("pending", "Lee", "Chan", "N1")


# -- the API ----------------------------------------------------------------------------------


def test_the_api_takes_and_gives_phone_and_custom_fields(client, ctx):
    fields.define("district", "School district", "choice", ["District 1", "District 2"])
    fields.define("interests", "Interests", "choices", ["Schools", "Health"])
    fields.define("volunteer", "Volunteer", "checkbox")
    fields.define("age", "Age", "number")
    db.session.commit()
    headers = auth(token("read", "write"))
    created = client.post("/api/v1/subscribers", headers=headers, json={
        "email": "api@example.org", "consent": "documented", "phone": "+44 20 7946 0958",
        "fields": {"district": "district 1", "interests": ["Health", "Schools"], "volunteer": True,
                   "age": 12}})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["phone"] == "+442079460958"
    assert body["fields"] == {"district": "District 1", "interests": ["Schools", "Health"], "volunteer": True,
                              "age": "12"}
    url = f"/api/v1/subscribers/{body['id']}"
    patched = client.patch(url, headers=headers, json={"fields": {"volunteer": False, "age": None,
                                                                  "interests": ["Schools"]}})
    assert patched.status_code == 200
    assert patched.get_json()["fields"] == {"district": "District 1", "interests": ["Schools"]}
    got = client.get(url, headers=headers).get_json()
    assert got["fields"] == {"district": "District 1", "interests": ["Schools"]}
    assert got["phone"] == "+442079460958"
    [listed] = client.get("/api/v1/subscribers", headers=headers).get_json()["items"]
    assert listed["fields"] == got["fields"] and listed["phone"] == got["phone"]


def test_a_bad_custom_value_or_phone_is_a_422_naming_each_field(client, ctx):
    fields.define("age", "Age", "number")
    db.session.commit()
    headers = auth(token("read", "write"))
    bad = client.post("/api/v1/subscribers", headers=headers, json={
        "email": "x@example.org", "phone": "12", "fields": {"age": "old", "shoe_size": "9"}})
    problem = is_problem(bad, 422)
    assert set(problem["errors"]) == {"phone", "fields.age", "fields.shoe_size"}
    assert problem["errors"]["fields.age"] == ["Age is a number, like 12 or 3.5"]
    assert "no such field" in problem["errors"]["fields.shoe_size"][0]
    assert subscriber("x@example.org") is None
    sub_id = client.post("/api/v1/subscribers", headers=headers,
                         json={"email": "x@example.org", "fields": {"age": "3"}}).get_json()["id"]
    refused = client.patch(f"/api/v1/subscribers/{sub_id}", headers=headers, json={"fields": {"age": "x"}})
    assert set(is_problem(refused, 422)["errors"]) == {"fields.age"}
    assert fields.values_for([sub_id])[sub_id] == {"age": ["3"]}


def test_an_unsubscribe_drops_what_waited_for_a_confirmation(app, client, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN_SECONDS", 0)
    signup(client, "wy@example.org")
    signup(client, "wy@example.org", first_name="Wy")
    apply_signups()
    sub = subscriber("wy@example.org")
    assert sub.pending_profile == {"first_name": "Wy"}
    subscriptions.unsubscribe(sub.id, subscriptions.Request(ip=IP, user_agent="test"))
    db.session.commit()
    assert subscriber("wy@example.org").pending_profile is None
