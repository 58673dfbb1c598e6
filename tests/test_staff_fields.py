"""The staff side of people's fields: the field settings pages, the subscriber page's profile
edit, and who may change them (audited once, values never on the trail)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import AuditEvent, Subscriber, SubscriberFieldValue
from alerts.permissions import Role
from alerts.subscribers import fields
from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, csrf_token, log_in


@pytest.fixture
def admin(app, client):
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD, role=Role.ADMIN)
    assert log_in(client).status_code == 303
    return client


def _post(client, path, data, page="/staff/fields"):
    payload = dict(data)
    payload["csrf_token"] = csrf_token(client, page)
    return client.post(path, data=payload)


def _audit(app, action):
    with app.app_context():
        return [(e.target, e.detail) for e in db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


def _add(client, **data):
    form = {"key": "region", "label": "Region", "kind": "choice", "choices": "North\nSouth\n\nEast\n"}
    form.update(data)
    return _post(client, "/staff/fields", form)


def test_the_page_lists_built_ins_first_then_custom_fields(app, admin):
    assert _add(admin, on_signup="y").status_code == 303
    page = admin.get("/staff/fields").get_data(as_text=True)
    page = page[page.index("<tbody>"):]
    order = [page.index(label) for label in ("First name", "Last name", "Postal code", "Phone", "Region")]
    assert order == sorted(order)
    assert "One choice" in page and "North, South, East" in page and "<code>region</code>" in page


def test_add_a_field_keeps_it_and_records_it_once(app, admin):
    resp = _add(admin, required="y")
    assert resp.status_code == 303
    with app.app_context():
        f = fields.by_key()["region"]
        assert (f.label, f.kind, f.choices, f.required, f.on_signup) == (
            "Region", "choice", ("North", "South", "East"), True, True)
    assert _audit(app, "field.create") == [("field region", {
        "label": "Region", "kind": "choice", "choices": ["North", "South", "East"], "required": True,
        "on_signup": True})]


def test_a_bad_field_is_refused_with_messages_next_to_the_inputs_and_the_input_kept(app, admin):
    resp = _post(admin, "/staff/fields", {"key": "Bad Key!", "label": "My typed label", "kind": "choices",
                                          "choices": ""})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'id="key-error"' in page and "lower-case letter" in page
    assert 'id="choices-error"' in page and "list at least one choice" in page
    assert 'value="My typed label"' in page and 'value="Bad Key!"' in page
    resp = _add(admin, key="email")
    assert resp.status_code == 400 and "already a field of every subscriber" in resp.get_data(as_text=True)
    with app.app_context():
        assert fields.custom() == []
    assert _audit(app, "field.create") == []


def test_edit_a_field_and_a_built_in(app, admin):
    _add(admin)
    page = admin.get("/staff/fields/region/edit").get_data(as_text=True)
    assert "North\nSouth\nEast" in page
    resp = _post(admin, "/staff/fields/region/edit",
                 {"label": "Borough", "choices": "North\nWest", "on_signup": "y"},
                 page="/staff/fields/region/edit")
    assert resp.status_code == 303
    resp = _post(admin, "/staff/fields/phone/edit", {"label": "Mobile", "on_signup": "y"},
                 page="/staff/fields/phone/edit")
    assert resp.status_code == 303
    with app.app_context():
        region, phone = fields.by_key()["region"], fields.by_key()["phone"]
        assert (region.label, region.choices, region.on_signup) == ("Borough", ("North", "West"), True)
        assert (phone.label, phone.on_signup, phone.kind) == ("Mobile", True, "phone")
    edits = _audit(app, "field.edit")
    assert [t for t, _ in edits] == ["field region", "field phone"]
    assert edits[0][1]["changed"] == ["label", "choices", "on_signup"]
    resp = _post(admin, "/staff/fields/region/edit", {"label": "", "choices": "A\nA"},
                 page="/staff/fields/region/edit")
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'id="label-error"' in page and "listed twice" in page and "A\nA" in page
    assert len(_audit(app, "field.edit")) == 2
    assert admin.get("/staff/fields/nothing/edit").status_code == 404


def test_remove_asks_first_saying_how_many_have_a_value_then_removes_on_post(app, admin):
    _add(admin)
    with app.app_context():
        for n in range(3):
            sub = Subscriber(email=f"p{n}@example.org", status="confirmed")
            db.session.add(sub)
            db.session.flush()
            if n < 2:
                fields.set_values(sub.id, {"region": ["North"]})
        db.session.commit()
    page = admin.get("/staff/fields/region/remove").get_data(as_text=True)
    assert "2 subscribers have a value for it" in page
    with app.app_context():
        assert fields.by_key().get("region") is not None  # a GET removes nothing
    assert admin.get("/staff/fields/first_name/remove").status_code == 404
    resp = _post(admin, "/staff/fields/region/remove", {}, page="/staff/fields/region/remove")
    assert resp.status_code == 303
    with app.app_context():
        assert "region" not in fields.by_key()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberFieldValue)) == 0
    assert _audit(app, "field.remove") == [("field region", {
        "label": "Region", "kind": "choice", "subscribers_with_value": 2})]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_viewers_and_editors_see_the_fields_but_change_nothing(app, client, role):
    with app.app_context():
        fields.define("region", "Region", "choice", ["North"])
        create_staff(STAFF_EMAIL, STAFF_PASSWORD, role=role)
        sub = Subscriber(email="p@example.org", status="confirmed", first_name="Ana")
        db.session.add(sub)
        db.session.commit()
        sub_id = sub.id
    assert log_in(client).status_code == 303
    page = client.get("/staff/fields")
    assert page.status_code == 200 and "Region" in page.get_data(as_text=True)
    assert "Add a field" not in page.get_data(as_text=True)
    token = csrf_token(client, "/staff/fields")
    for path, data in [("/staff/fields", {"key": "x", "label": "X", "kind": "text"}),
                       ("/staff/fields/region/edit", {"label": "Y"}),
                       ("/staff/fields/region/remove", {}),
                       (f"/staff/subscribers/{sub_id}/edit", {"first_name": "Bo"})]:
        assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert client.get("/staff/fields/region/edit").status_code == 403
    subscriber_page = client.get(f"/staff/subscribers/{sub_id}").get_data(as_text=True)
    assert "Ana" in subscriber_page and "Edit the profile" not in subscriber_page
    with app.app_context():
        assert [f.key for f in fields.custom()] == ["region"] and fields.by_key()["region"].label == "Region"
        assert db.session.get(Subscriber, sub_id).first_name == "Ana"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action.startswith("field."))) == 0


# -- the subscriber page --------------------------------------------------------------


@pytest.fixture
def person(app):
    with app.app_context():
        fields.define("region", "Region", "choice", ["North", "South"])
        fields.define("skills", "Skills", "choices", ["Phone banking", "Driving", "Cooking"])
        fields.define("volunteer", "Volunteer", "checkbox")
        fields.define("age", "Age", "number")
        sub = Subscriber(email="ana@example.org", status="confirmed", first_name="Ana", postal_code="10001",
                         phone="+12125550100", language="en")
        db.session.add(sub)
        db.session.flush()
        fields.set_values(sub.id, {"region": ["North"], "skills": ["Driving"]})
        db.session.commit()
        return sub.id


def test_the_subscriber_page_shows_every_field(app, admin, person):
    page = admin.get(f"/staff/subscribers/{person}").get_data(as_text=True)
    for shown in ("Ana", "10001", "(212) 555-0100", "Region", "North", "Skills", "Driving", "Volunteer",
                  "Age"):
        assert shown in page, shown
    assert 'name="field.region"' in page and "Edit the profile" in page


def test_staff_edit_the_profile_audited_once_by_field_name_without_values(app, admin, person):
    page = f"/staff/subscribers/{person}"
    resp = _post(admin, f"{page}/edit", {
        "first_name": "Ana María", "last_name": "Pérez", "postal_code": "10001", "phone": "(212) 555-0100",
        "language": "es", "field.region": "South", "field.skills": ["Driving", "Cooking"],
        "field.volunteer": "yes", "field.age": ""}, page=page)
    assert resp.status_code == 303
    with app.app_context():
        sub = db.session.get(Subscriber, person)
        assert (sub.first_name, sub.last_name, sub.postal_code, sub.phone, sub.language) == (
            "Ana María", "Pérez", "10001", "+12125550100", "es")
        assert fields.values_for([person])[person] == {
            "region": ["South"], "skills": ["Driving", "Cooking"], "volunteer": ["yes"]}
    edits = _audit(app, "subscriber.edit")
    assert edits == [(f"subscriber {person}", {
        "fields": ["first_name", "last_name", "language", "region", "skills", "volunteer"]})]
    assert "Pérez" not in str(edits) and "South" not in str(edits)
    # Saving it again as it is changes nothing and records nothing.
    resp = _post(admin, f"{page}/edit", {
        "first_name": "Ana María", "last_name": "Pérez", "postal_code": "10001", "phone": "+1 212 555 0100",
        "language": "es", "field.region": "South", "field.skills": ["Driving", "Cooking"],
        "field.volunteer": "yes"}, page=page)
    assert resp.status_code == 303 and len(_audit(app, "subscriber.edit")) == 1


def test_a_bad_profile_edit_keeps_what_was_typed_and_names_each_field(app, admin, person):
    page = f"/staff/subscribers/{person}"
    resp = _post(admin, f"{page}/edit", {
        "first_name": "Bea", "postal_code": "10001!", "phone": "12", "language": "en",
        "field.region": "North", "field.age": "lots", "field.skills": "Driving"}, page=page)
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert 'id="p-postal_code-error"' in body and "letters, digits, spaces and hyphens" in body
    assert 'id="p-phone-error"' in body and 'id="p-age-error"' in body and "Age is a number" in body
    assert 'value="Bea"' in body and 'value="10001!"' in body and 'value="lots"' in body
    with app.app_context():
        assert db.session.get(Subscriber, person).first_name == "Ana"
    assert _audit(app, "subscriber.edit") == []


def test_a_choice_taken_away_stays_on_the_subscriber_when_other_fields_change(app, admin, person):
    with app.app_context():
        fields.change("region", label="Region", required=False, on_signup=False, choices=["South"])
        db.session.commit()
    page = f"/staff/subscribers/{person}"
    resp = _post(admin, f"{page}/edit", {"first_name": "Ana", "postal_code": "10002", "phone": "+12125550100",
                                         "language": "en", "field.region": "North",
                                         "field.skills": "Driving"}, page=page)
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(Subscriber, person).postal_code == "10002"
        assert fields.values_for([person])[person]["region"] == ["North"]
    assert _audit(app, "subscriber.edit")[0][1] == {"fields": ["postal_code"]}


def test_the_subscriber_list_shows_the_name_beside_the_email(app, admin, person):
    page = admin.get("/staff/subscribers").get_data(as_text=True)
    assert "ana@example.org</a><span class=\"subscriber-name\"> Ana</span>" in page

