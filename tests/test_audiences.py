"""Audience rules against hand-computed sets (SQLite and PostgreSQL), skip-acted, reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alerts import audiences
from alerts.extensions import db
from alerts.models import (
    Action,
    Alert,
    Click,
    Delivery,
    Signature,
    Subscriber,
    SubscriberTopic,
    Suppression,
    email_hash,
    utcnow,
)
from tests.helpers import blasts, save_alert, seed_actions

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"


def _when(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def _action(slug: str) -> int:
    return db.session.scalar(sa.select(Action.id).where(Action.slug == slug))


def _sign(slug: str, sub: Subscriber, days_ago: float, *, by_address_only: bool = False) -> None:
    db.session.add(Signature(
        action_id=_action(slug), subscriber_id=None if by_address_only else sub.id,
        email=sub.email.upper() if by_address_only else sub.email, email_key=sub.email.lower(),
        name="N", source="action-center", created_at=utcnow() - timedelta(days=days_ago)))


@pytest.fixture
def people(app, ctx):
    """Nine people whose audience membership each test works out by hand."""
    seed_actions()
    rows = {
        "a": dict(joined="2026-01-10", source="Pride"),
        "b": dict(joined="2026-03-01", source="web"),
        "c": dict(joined="2026-06-01", source="pride"),
        "d": dict(joined="2025-12-01", source=None),
        "e": dict(joined="2026-02-01", source=None, status="pending"),
        "f": dict(joined="2026-02-01", source=None),  # suppressed
        "g": dict(joined="2026-02-01", source=None),  # paused
        "h": dict(joined="2026-09-01", source="web"),
        "i": dict(joined="2026-02-01", source="Pride", status="unsubscribed"),
    }
    subs = {}
    for key, row in rows.items():
        sub = Subscriber(email=f"{key}@example.org", status=row.get("status", "confirmed"),
                         created_at=_when(row["joined"]), confirmed_at=_when(row["joined"]),
                         source=row["source"])
        db.session.add(sub)
        subs[key] = sub
    db.session.flush()
    subs["g"].paused_until = utcnow() + timedelta(days=10)
    db.session.add(Suppression(email_hash=email_hash("f@example.org"), email="f@example.org",
                               reason="hard-bounce"))
    _sign(RIKERS, subs["a"], 2)
    _sign(DETENTION, subs["c"], 100)
    _sign(RIKERS, subs["h"], 40, by_address_only=True)
    _sign(RIKERS, subs["f"], 1)
    earlier = save_alert(None, subject="Earlier", intro_md="x", action_slugs=[RIKERS])
    db.session.add(Click(alert_id=earlier.id, subscriber_id=subs["b"].id, at=utcnow() - timedelta(days=5)))
    db.session.add(Click(alert_id=earlier.id, subscriber_id=subs["d"].id, machine=True, at=utcnow()))
    db.session.add(SubscriberTopic(subscriber_id=subs["c"].id, topic="detention"))
    db.session.add(SubscriberTopic(subscriber_id=subs["h"].id, topic="detention"))
    db.session.add(SubscriberTopic(subscriber_id=subs["h"].id, topic="mental-health"))
    db.session.add(SubscriberTopic(subscriber_id=subs["d"].id, topic="mental-health"))
    db.session.commit()
    return subs


def _recipients_of(rules: dict, slugs: list[str] | None = None) -> set[str]:
    """Start a real blast and read who got a delivery row; the size shown before must agree."""
    alert = save_alert(None, subject="Test", intro_md="x", action_slugs=slugs, audience=rules)
    shown = audiences.size(audiences.parse(alert.audience), audiences.linked_action_ids(alert))
    total = blasts.start_blast(alert.id)
    got = set(db.session.scalars(
        sa.select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.alert_id == alert.id)))
    assert shown == total == len(got)
    return {e.split("@")[0] for e in got}


CASES = [
    ({}, None, {"a", "b", "c", "d", "h"}),
    ({"except_signers_of": [RIKERS]}, None, {"b", "c", "d"}),
    ({"only_signers_of": [RIKERS]}, None, {"a", "h"}),
    ({"only_signers_of": [RIKERS, DETENTION]}, None, {"a", "c", "h"}),
    ({"joined_after": "2026-01-01", "joined_before": "2026-04-01"}, None, {"a", "b"}),
    ({"joined_after": "2026-06-01"}, None, {"c", "h"}),
    ({"source": "PRIDE"}, None, {"a", "c"}),
    ({"engaged_days": 30}, None, {"a", "b"}),
    ({"engaged_days": 30, "engaged": False}, None, {"c", "d", "h"}),
    ({"engaged_days": 60}, None, {"a", "b", "h"}),
    ({"topics": ["detention"]}, None, {"a", "b", "c", "h"}),
    ({"topics": ["mental-health", "child-welfare"]}, None, {"a", "b", "d", "h"}),
    # Skip those who already acted (the default): a and h signed the one action linked.
    ({}, [RIKERS], {"b", "c", "d"}),
    ({"include_acted": True}, [RIKERS], {"a", "b", "c", "d", "h"}),
    # Nobody signed both actions, so nobody is left out for having done everything.
    ({}, [RIKERS, DETENTION], {"a", "b", "c", "d", "h"}),
    # "Everyone who cares about detention and has not signed yet".
    ({"topics": ["detention"]}, [DETENTION], {"a", "b", "h"}),
    ({"except_signers_of": [RIKERS], "source": "pride", "topics": ["detention"]}, None, {"c"}),
]


@pytest.mark.parametrize(("rules", "slugs", "expected"), CASES)
def test_audience_matches_the_hand_computed_set(people, rules, slugs, expected):
    assert _recipients_of(rules, slugs) == expected


def test_audience_rules_are_said_in_words(people):
    rules = audiences.parse({"except_signers_of": [RIKERS]})
    assert audiences.describe(rules) == (
        "everyone confirmed, except those who signed Call on Mayor Adams to Follow the Law and Close "
        "Rikers Island")


@pytest.mark.parametrize(("raw", "message"), [
    ({"only_signers_of": ["no-such-action"]}, "no action with slug no-such-action"),
    ({"joined_after": "31/01/2026"}, "joined after must be a date"),
    ({"engaged_days": "ten"}, "engaged within days must be a whole number"),
    ({"engaged_days": 0}, "between 1 and"),
    ({"topics": ["gardening"]}, "unknown topic gardening"),
    ({"joined_after": "2026-05-01", "joined_before": "2026-01-01"}, "earlier than"),
    ({"only_signers_of": [RIKERS], "except_signers_of": [RIKERS]}, "nobody could match"),
    ({"colour": "blue"}, "unknown audience rule colour"),
])
def test_bad_rules_are_refused_by_name_and_nothing_is_saved(people, raw, message):
    from alerts.blasts.compose import ComposeError

    before = db.session.scalar(sa.select(sa.func.count()).select_from(Alert))
    with pytest.raises(ComposeError, match=message):
        save_alert(None, subject="S", intro_md="x", audience=raw)
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == before


def test_reminder_goes_to_recipients_who_did_not_sign(people):
    from alerts.blasts import compose

    sent = save_alert(None, subject="Close Rikers", intro_md="x", action_slugs=[RIKERS],
                      audience={"include_acted": True})
    blasts.start_blast(sent.id)
    db.session.execute(sa.update(Delivery).where(Delivery.alert_id == sent.id).values(status="sent"))
    db.session.execute(sa.update(Alert).where(Alert.id == sent.id).values(state="sent"))
    # After the alert: b signs, c clicks (d's machine click is no click).
    _sign(RIKERS, people["b"], 0)
    db.session.add(Click(alert_id=sent.id, subscriber_id=people["c"].id))
    db.session.add(Click(alert_id=sent.id, subscriber_id=people["d"].id, machine=True))
    db.session.commit()
    reminder = compose.reminder(sent.id, minus_clickers=False, created_by="t")
    db.session.commit()
    assert reminder.state == "draft" and reminder.parent_id == sent.id
    assert reminder.subject.startswith("Reminder: ")
    assert _members(reminder) == {"c", "d"}
    no_clickers = compose.reminder(sent.id, minus_clickers=True, created_by="t")
    db.session.commit()
    assert _members(no_clickers) == {"d"}


def _members(alert: Alert) -> set[str]:
    total = blasts.start_blast(alert.id)
    got = set(db.session.scalars(
        sa.select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.alert_id == alert.id)))
    assert total == len(got)
    return {e.split("@")[0] for e in got}


def test_a_rule_that_no_longer_holds_stops_the_start_and_names_it(people):
    alert = save_alert(None, subject="S", intro_md="x", audience={"only_signers_of": [RIKERS]})
    alert.audience = {"only_signers_of": ["an-action-since-deleted"]}
    db.session.commit()
    with pytest.raises(blasts.BlastError, match="no action with slug an-action-since-deleted"):
        blasts.start_blast(alert.id)
    db.session.rollback()
    assert db.session.get(Alert, alert.id).state == "draft"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0


def test_a_signer_by_address_is_known_whatever_the_case_of_a_non_ascii_address(people):
    """Signatures and subscribers are matched on the case-folded key both keep (Python's
    str.lower), not on the database's lower(), which leaves Ü as it is on SQLite and under a C
    locale: Jörg signed as JÖRG and must not be asked again."""
    from alerts.models import email_key

    jorg = Subscriber(email="Jörg.Über@example.org", status="confirmed", confirmed_at=utcnow())
    db.session.add(jorg)
    db.session.flush()
    db.session.add(Signature(action_id=_action(RIKERS), subscriber_id=None, email="JÖRG.ÜBER@example.org",
                             email_key=email_key("JÖRG.ÜBER@example.org"), name="J", source="import"))
    db.session.commit()
    assert "Jörg.Über" not in _recipients_of({"except_signers_of": [RIKERS]})
    assert "Jörg.Über" in _recipients_of({"only_signers_of": [RIKERS]})


# -- audiences by what people told us: postal code, first name, custom fields ----------------


@pytest.fixture
def profiled(people):
    """The same nine people with postal codes, first names and custom fields' values."""
    from alerts.subscribers import fields

    fields.define("region", "Region", "choice", ["North", "South"])
    fields.define("skills", "Skills", "choices", ["Phone banking", "Driving", "Cooking"])
    fields.define("volunteer", "Volunteer", "checkbox")
    fields.define("notes", "Notes", "text")
    rows = {
        "a": ("10001", "Ana", {"region": ["North"], "skills": ["Driving"], "volunteer": ["yes"]}),
        "b": ("10452", "", {"region": ["South"], "notes": ["North"]}),
        "c": ("11201", "Cy", {"skills": ["Driving", "Cooking"]}),
        "d": ("sw1a 1aa", None, {"volunteer": ["yes"]}),
        "e": ("10001", "Eve", {"region": ["North"]}),  # pending
        "f": ("10001", "Fay", {"region": ["North"], "volunteer": ["yes"]}),  # suppressed
        "h": (None, "Hal", {"region": ["North"]}),
        "i": ("10001", "Ida", {"region": ["North"]}),  # unsubscribed
    }
    for key, (postal, first, values) in rows.items():
        sub = people[key]
        sub.postal_code, sub.first_name = postal, first
        fields.set_values(sub.id, values)
    db.session.commit()
    return people


FIELD_CASES = [
    ({"postal_prefixes": "100"}, {"a"}),
    ({"postal_prefixes": "100, 104"}, {"a", "b"}),
    ({"postal_prefixes": ["1"]}, {"a", "b", "c"}),
    ({"postal_prefixes": "SW1"}, {"d"}),
    ({"postal_prefixes": "sw1a 1"}, {"d"}),
    ({"has_first_name": True}, {"a", "c", "h"}),
    ({"has_first_name": "no"}, {"b", "d"}),
    ({"field_values": {"region": ["North"]}}, {"a", "h"}),
    ({"field_values": {"region": ["north", "South"]}}, {"a", "b", "h"}),
    ({"field_values": {"skills": ["Driving"]}}, {"a", "c"}),
    ({"field_values": {"skills": ["Cooking", "Phone banking"]}}, {"c"}),
    ({"field_values": {"volunteer": ["yes"]}}, {"a", "d"}),
    ({"field_values": {"skills": ["Driving"], "volunteer": ["yes"]}}, {"a"}),
    ({"field_values": {"region": ["North"]}, "has_first_name": True, "postal_prefixes": "100"}, {"a"}),
    ({"field_values": {"region": ["North"]}, "except_signers_of": [RIKERS]}, set()),
    ({"field_values": {"region": []}}, {"a", "b", "c", "d", "h"}),
]


@pytest.mark.parametrize(("rules", "expected"), FIELD_CASES)
def test_audience_by_field_matches_the_hand_computed_set(profiled, rules, expected):
    assert _recipients_of(rules) == expected


def test_audience_by_field_is_said_in_words_and_kept_as_json(profiled):
    rules = audiences.parse({"postal_prefixes": "100, 104", "has_first_name": False,
                             "field_values": {"region": ["south", "North"], "volunteer": "yes"}})
    assert audiences.describe(rules) == (
        "everyone confirmed, whose postal code starts with 100 or 104, whose first name is not known, "
        "whose “Region” is North or South, who ticked “Volunteer”")
    stored = rules.to_json()
    assert stored == {"postal_prefixes": ["100", "104"], "has_first_name": False,
                      "field_values": {"region": ["North", "South"], "volunteer": ["yes"]}}
    saved = audiences.save_audience("North, no name", rules)
    db.session.commit()
    assert audiences.parse(saved.rules) == rules
    assert audiences.parse({}).to_json() == {}  # rules saved before fields existed read as they did


@pytest.mark.parametrize(("raw", "message"), [
    ({"field_values": {"colour": ["blue"]}}, "there is no field 'colour'"),
    ({"field_values": {"notes": ["North"]}}, "Notes is a text field"),
    ({"field_values": {"region": ["West"]}}, "Region has no choice West"),
    ({"field_values": {"volunteer": ["no"]}}, "it can only be ticked"),
    ({"field_values": ["region"]}, "must be a mapping"),
    ({"postal_prefixes": "100%"}, "is not the start of a postal code"),
])
def test_bad_field_rules_are_refused_by_name(profiled, raw, message):
    with pytest.raises(audiences.AudienceError, match=message):
        audiences.parse(raw)


def test_a_field_removed_after_the_rules_were_saved_is_named_not_ignored(profiled):
    from alerts.subscribers import fields

    alert = save_alert(None, subject="S", intro_md="x", audience={"field_values": {"region": ["North"]}})
    fields.remove("region")
    db.session.commit()
    with pytest.raises(blasts.BlastError, match="there is no field 'region'"):
        blasts.start_blast(alert.id)
    db.session.rollback()
    # Between the check and the count a removed field matches nobody, never everybody.
    rules = audiences.Rules(field_values={"region": ["North"]})
    assert audiences.size(rules, []) == 0
