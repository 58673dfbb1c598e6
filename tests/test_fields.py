"""The fields of a person: custom field definitions, every kind's values checked, phones in E.164."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Subscriber, SubscriberFieldValue, SubscriberStatus
from alerts.subscribers import fields, people
from alerts.subscribers.fields import FieldDef, FieldError


def _sub(email: str = "ana@example.org") -> Subscriber:
    sub = Subscriber(email=email, status=SubscriberStatus.CONFIRMED)
    db.session.add(sub)
    db.session.flush()
    return sub


def test_the_builtins_come_first_with_the_form_asking_for_first_name_and_postcode(ctx):
    defs = fields.definitions()
    assert [f.key for f in defs] == ["first_name", "last_name", "postal_code", "phone"]
    assert [f.key for f in fields.signup_fields()] == ["first_name", "postal_code"]


def test_a_custom_field_is_defined_ordered_and_its_key_checked(ctx):
    fields.define("school_district", "School district", "choice", ["District 1", "District 2", ""])
    fields.define("volunteer", "Wants to volunteer", "checkbox", on_signup=True)
    assert [f.key for f in fields.custom()] == ["school_district", "volunteer"]
    district = fields.by_key()["school_district"]
    assert district.choices == ("District 1", "District 2") and not district.on_signup
    assert [f.key for f in fields.signup_fields()] == ["first_name", "postal_code", "volunteer"]
    for key, word in (("email", "already a field"), ("first_name", "already a field"),
                      ("Bad Key", "lower-case"), ("school_district", "already"), ("", "lower-case")):
        with pytest.raises(FieldError) as caught:
            fields.define(key, "Label", "text")
        assert word in caught.value.errors["key"], key
    with pytest.raises(FieldError) as caught:
        fields.define("colour", "", "choice", [])
    assert set(caught.value.errors) == {"label", "choices"}
    with pytest.raises(FieldError) as caught:
        fields.define("colour", "Colour", "colour")
    assert "kind" in caught.value.errors


def test_a_required_field_is_always_on_the_form_and_a_builtin_can_be_hidden_not_removed(ctx):
    fields.change("postal_code", label="ZIP code", required=False, on_signup=False)
    fields.change("first_name", label="First name", required=True, on_signup=False)
    signup = fields.signup_fields()
    assert [f.key for f in signup] == ["first_name"] and signup[0].required
    assert fields.by_key()["postal_code"].label == "ZIP code"
    with pytest.raises(FieldError):
        fields.remove("first_name")


@pytest.mark.parametrize(("kind", "raw", "kept"), [
    ("text", "  Ana   María ", ["Ana María"]),
    ("text", "", []),
    ("number", "1,200", ["1200"]),
    ("number", "3.50", ["3.5"]),
    ("number", "-2", ["-2"]),
    ("date", "2026-03-31", ["2026-03-31"]),
    ("checkbox", "Yes", ["yes"]),
    ("checkbox", True, ["yes"]),
    ("checkbox", "no", []),
    ("checkbox", "", []),
    ("choice", "district 2", ["District 2"]),
    ("choices", "Events; district 1", ["District 1", "Events"]),
    ("choices", ["Events", "District 2", "Events"], ["District 2", "Events"]),
])
def test_each_kind_keeps_a_value_in_one_spelling(kind, raw, kept):
    fdef = FieldDef("f", "The field", kind, ("District 1", "District 2", "Events"))
    assert fields.clean_value(fdef, raw) == kept


@pytest.mark.parametrize(("kind", "raw", "says"), [
    ("number", "twelve", "is a number"),
    ("number", "1e999999", "is a number"),
    ("number", "NaN", "is a number"),
    ("date", "31/03/2026", "year-month-day"),
    ("checkbox", "maybe", "yes or no"),
    ("choice", "District 9", "is one of: District 1, District 2"),
    ("choice", ["District 1", "District 2"], "takes one value"),
    ("choices", "Events; Parties", "is one of"),
    ("text", "line\x00break", "one line"),
    ("text", "x" * 501, "at most 500"),
])
def test_a_value_a_field_cannot_hold_is_refused_saying_why(kind, raw, says):
    fdef = FieldDef("f", "The field", kind, ("District 1", "District 2", "Events"))
    with pytest.raises(ValueError, match=says):
        fields.clean_value(fdef, raw)


def test_values_are_checked_together_and_unknown_or_missing_ones_named(ctx):
    fields.define("district", "District", "choice", ["1", "2"], required=True)
    fields.define("age", "Age", "number")
    assert fields.clean_values({"district": "2", "age": "16"}) == {"district": ["2"], "age": ["16"]}
    with pytest.raises(FieldError) as caught:
        fields.clean_values({"age": "old", "shoe_size": "9"}, require=True)
    assert set(caught.value.errors) == {"age", "shoe_size", "district"}
    assert "no such field" in caught.value.errors["shoe_size"]
    assert caught.value.errors["district"] == "District is required"


def test_values_are_kept_read_back_replaced_and_never_overwritten_by_a_later_way_in(ctx):
    fields.define("interests", "Interests", "choices", ["Foster care", "Immigration", "Juvenile justice"])
    fields.define("joined", "Joined", "date")
    ana, ben = _sub(), _sub("ben@example.org")
    fields.set_values(ana.id, {"interests": ["Foster care", "Immigration"], "joined": ["2026-01-02"]})
    fields.set_values(ben.id, {"joined": ["2025-05-05"]})
    assert fields.values_for([ana.id, ben.id]) == {
        ana.id: {"interests": ["Foster care", "Immigration"], "joined": ["2026-01-02"]},
        ben.id: {"joined": ["2025-05-05"]}}
    fields.set_values(ana.id, {"interests": ["Juvenile justice"], "joined": ["2020-01-01"]}, only_empty=True)
    fields.set_values(ben.id, {"interests": ["Juvenile justice"], "joined": ["2020-01-01"]}, only_empty=True)
    got = fields.values_for([ana.id, ben.id])
    assert got[ana.id]["interests"] == ["Foster care", "Immigration"]
    assert got[ben.id] == {"joined": ["2025-05-05"], "interests": ["Juvenile justice"]}
    fields.set_values(ana.id, {"interests": []})
    assert "interests" not in fields.values_for([ana.id])[ana.id]
    fields.remove("interests")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberFieldValue)) == 2


def test_an_erased_subscriber_takes_their_values_with_them(ctx):
    fields.define("note", "Note", "text")
    sub = _sub()
    fields.set_values(sub.id, {"note": ["met at the rally"]})
    db.session.delete(sub)
    db.session.flush()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberFieldValue)) == 0


@pytest.mark.parametrize(("raw", "kept"), [
    ("(212) 555-0100", "+12125550100"),
    ("+44 20 7946 0958", "+442079460958"),
    ("212.555.0100", "+12125550100"),
])
def test_a_phone_number_is_kept_in_e164(ctx, raw, kept):
    assert people.clean_profile({"phone": raw}) == {"phone": kept}
    assert fields.shown_phone(kept) in {"(212) 555-0100", "+44 20 7946 0958"}


@pytest.mark.parametrize("raw", ["555", "call me", "+1 000 000 0000", "12125550100999"])
def test_a_phone_number_that_is_not_one_is_refused(ctx, raw):
    with pytest.raises(people.ProfileError) as caught:
        people.clean_profile({"phone": raw})
    assert "phone number" in caught.value.errors["phone"]


def test_the_signup_forms_fields_are_cached_per_process_for_a_few_seconds(app, client, monkeypatch):
    """A signup does not read the definitions each time: a change made in another process (here a
    row written behind `fields`' back) shows within SIGNUP_CACHE_SECONDS; one made through
    `fields` shows at once."""
    import sqlalchemy as sa

    from alerts.extensions import db
    from alerts.models import SubscriberField
    from alerts.subscribers import fields as fields_module

    with app.test_request_context("/staff/fields", method="POST"):
        before = [f.key for f in fields_module.signup_form_fields()]
        db.session.execute(sa.insert(SubscriberField).values(
            key="district", label="District", kind="text", required=True, on_signup=True, position=9))
        assert [f.key for f in fields_module.signup_form_fields()] == before  # cached
        monkeypatch.setattr(fields_module, "SIGNUP_CACHE_SECONDS", 0.0)
        assert "district" in [f.key for f in fields_module.signup_form_fields()]  # read again
        monkeypatch.setattr(fields_module, "SIGNUP_CACHE_SECONDS", 3600.0)
        fields_module.define("ward", "Ward", "text", on_signup=True)
        assert "ward" in [f.key for f in fields_module.signup_form_fields()]  # this process: at once
