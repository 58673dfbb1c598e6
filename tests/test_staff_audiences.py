"""The staff side of audiences: compose with rules, the live count, the words on send, reminders."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import AbTest, Action, Alert, Delivery, SavedAudience, Signature, Subscriber
from tests.helpers import STAFF_EMAIL as EMAIL
from tests.helpers import STAFF_PASSWORD as PASSWORD
from tests.helpers import add_confirmed, blasts, create_staff, make_alert, post, seed_actions
from tests.helpers import log_in as login


@pytest.fixture
def staff_client(app, client):
    with app.app_context():
        create_staff(EMAIL, PASSWORD)
    assert login(client).status_code == 303
    return client

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"


def _db(app):
    """Database work between requests, in its own app context (a pushed context would share `g`)."""
    return app.app_context()


def _setup(app, n=12, signers=3):
    with _db(app):
        return _setup_in(n, signers)


def _setup_in(n, signers):
    seed_actions()
    emails = add_confirmed(n)
    rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
    for e in emails[:signers]:
        db.session.add(Signature(action_id=rikers, email=e, email_key=e, source="action-center"))
    db.session.commit()
    return emails


def test_live_count_follows_the_rules(app, staff_client):
    _setup(app)
    got = staff_client.get(f"/staff/alerts/audience.json?actions={DETENTION}")
    assert got.json["size"] == 12 and got.json["description"].startswith("everyone confirmed")
    got = staff_client.get(f"/staff/alerts/audience.json?actions={DETENTION}&except_signers_of={RIKERS}")
    assert got.json["size"] == 9
    assert got.json["words"] == ("Send to 9 people: everyone confirmed, except those who signed Call on "
                                 "Mayor Adams to Follow the Law and Close Rikers Island or who already "
                                 "signed all this alert's actions")
    # Linking only Rikers: its three signers are left out by default, kept with include_acted.
    assert staff_client.get(f"/staff/alerts/audience.json?actions={RIKERS}").json["size"] == 9
    assert staff_client.get(
        f"/staff/alerts/audience.json?actions={RIKERS}&include_acted=y").json["size"] == 12
    bad = staff_client.get("/staff/alerts/audience.json?joined_after=yesterday")
    assert bad.status_code == 400 and "joined after must be a date" in bad.json["error"]


def test_compose_saves_rules_and_ab_and_the_send_page_says_them(app, staff_client):
    _setup(app)
    response = post(staff_client, "/staff/alerts/new", {
        "subject": "Close Rikers", "intro_md": "Now.", "actions": [DETENTION],
        "except_signers_of": [RIKERS], "engagement": "", "engaged_days": "90", "topics": ["detention"],
        "save_as": "Not yet Rikers", "subject_b": "Rikers must close", "from_name_b": "Maria",
        "ab_sample": "10", "ab_wait": "120", "ab_metric": "signatures"}, page="/staff/alerts/new")
    assert response.status_code == 303, response.get_data(as_text=True)
    with _db(app):
        alert = db.session.scalar(sa.select(Alert))
        assert alert.audience == {"except_signers_of": [RIKERS], "topics": ["detention"]}
        saved = db.session.scalar(sa.select(SavedAudience))
        assert saved.name == "Not yet Rikers" and saved.rules == alert.audience
        test = db.session.get(AbTest, alert.id)
        assert [v["subject"] for v in test.variants] == ["Close Rikers", "Rikers must close"]
        assert test.metric == "signatures" and test.variants[1]["from_name"] == "Maria"
    page = staff_client.get(f"/staff/alerts/{alert.id}/send").get_data(as_text=True)
    assert ("Send to 9 people: everyone confirmed, who chose Detention (or chose no topics), except those "
            "who signed Call on Mayor Adams") in page
    assert "Send to 9 people now" in page
    edit = staff_client.get(f"/staff/alerts/{alert.id}/edit").get_data(as_text=True)
    assert 'data-rules=' in edit and "Rikers must close" in edit


def test_compose_with_a_bad_rule_keeps_the_input_and_names_it(app, staff_client):
    _setup(app)
    response = post(staff_client, "/staff/alerts/new", {
        "subject": "Keep me", "intro_md": "Now.", "actions": [DETENTION], "joined_after": "2026-05-01",
        "joined_before": "2026-01-01", "engaged_days": "90"}, page="/staff/alerts/new")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "joined after must be earlier than joined before" in page and 'value="Keep me"' in page
    with _db(app):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_remind_those_who_did_not_act_in_two_clicks(app, staff_client):
    emails = _setup(app, n=6, signers=0)
    with _db(app):
        alert_id = make_alert(slugs=[RIKERS])
        blasts.start_blast(alert_id)
        db.session.execute(sa.update(Delivery).values(status="sent"))
        db.session.execute(sa.update(Alert).values(state="sent"))
        rikers = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == emails[0]))
        db.session.add(Signature(action_id=rikers, subscriber_id=sub.id, email=sub.email,
                                 email_key=sub.email, source="alert", alert_id=alert_id))
        db.session.commit()
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Remind those who did not act" in page
    response = post(staff_client, f"/staff/alerts/{alert_id}/remind",
                    {"subject": "Still time to close Rikers"}, page=f"/staff/alerts/{alert_id}")
    assert response.status_code == 303
    with _db(app):
        draft = db.session.scalar(sa.select(Alert).where(Alert.parent_id == alert_id))
        assert draft.subject == "Still time to close Rikers" and draft.state == "draft"
    assert staff_client.get(response.headers["Location"]).status_code == 200
    counted = staff_client.get(response.headers["Location"] + "/recipients.json").json
    assert counted["words"].startswith("Send to 5 people: those sent alert")
    # Editing the reminder keeps "those sent alert N" even though the form does not show it.
    post(staff_client, f"/staff/alerts/{draft.id}/edit",
         {"subject": "Edited", "intro_md": "x", "actions": [RIKERS], "engaged_days": "90"},
         page=f"/staff/alerts/{draft.id}/edit")
    with _db(app):
        assert db.session.get(Alert, draft.id).audience["received_alert"] == alert_id


def test_staff_tag_actions_with_topics_and_compose_says_so(app, staff_client):
    with _db(app):
        seed_actions()
        action = db.session.scalar(sa.select(Action).where(Action.slug == DETENTION))
        action_id, title, cta = action.id, action.title, action.call_to_action
    path = f"/staff/actions/{action_id}/edit"
    response = post(staff_client, path, {"title": title, "slug": DETENTION, "call_to_action": cta,
                                         "kind": "petition", "is_open": "y",
                                         "topics": ["detention", "juvenile-justice"]}, page=path)
    assert response.status_code == 303, response.get_data(as_text=True)
    with _db(app):
        assert db.session.get(Action, action_id).topics == ["detention", "juvenile-justice"]
    page = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    assert "This alert’s actions are tagged Detention, Juvenile justice." in page
    bad = post(staff_client, path, {"title": title, "slug": DETENTION, "call_to_action": cta,
                                    "kind": "petition", "topics": ["gardening"]}, page=path)
    assert bad.status_code == 400 and "gardening" in bad.get_data(as_text=True)


def _with_fields(app, emails):
    """Region and Volunteer fields; the first four have postal codes, the first two names."""
    from alerts.subscribers import fields

    with _db(app):
        fields.define("region", "Region", "choice", ["North", "South"])
        fields.define("volunteer", "Volunteer", "checkbox")
        for n, email in enumerate(emails):
            sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
            sub.postal_code = ["10001", "10002", "11201", "20001"][n] if n < 4 else None
            sub.first_name = "Ana" if n < 2 else None
            fields.set_values(sub.id, {"region": ["North" if n % 2 else "South"],
                                       "volunteer": ["yes"] if n < 3 else []})
        db.session.commit()


def test_live_count_follows_the_field_rules(app, staff_client):
    emails = _setup(app)
    _with_fields(app, emails)
    url = f"/staff/alerts/audience.json?actions={DETENTION}"
    assert staff_client.get(f"{url}&postal_prefixes=100,+112").json["size"] == 3
    assert staff_client.get(f"{url}&has_first_name=yes").json["size"] == 2
    assert staff_client.get(f"{url}&has_first_name=no").json["size"] == 10
    got = staff_client.get(f"{url}&field.region=North").json
    assert got["size"] == 6 and "whose “Region” is North" in got["description"]
    assert staff_client.get(f"{url}&field.region=North&field.region=South").json["size"] == 12
    assert staff_client.get(f"{url}&field.region=North&field.volunteer=yes").json["size"] == 1
    bad = staff_client.get(f"{url}&field.region=West")
    assert bad.status_code == 400 and "Region has no choice West" in bad.json["error"]


def test_compose_saves_field_rules_and_shows_them_again(app, staff_client):
    emails = _setup(app)
    _with_fields(app, emails)
    page = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    assert 'name="field.region" value="North"' in page and 'name="field.volunteer" value="yes"' in page
    response = post(staff_client, "/staff/alerts/new", {
        "subject": "Northerners", "intro_md": "Now.", "actions": [DETENTION], "engaged_days": "90",
        "postal_prefixes": "100", "has_first_name": "yes", "field.region": ["South"],
        "field.volunteer": "yes",
        "save_as": "Named southern volunteers"}, page="/staff/alerts/new")
    assert response.status_code == 303, response.get_data(as_text=True)
    with _db(app):
        alert = db.session.scalar(sa.select(Alert))
        assert alert.audience == {"postal_prefixes": ["100"], "has_first_name": True,
                                  "field_values": {"region": ["South"], "volunteer": ["yes"]}}
        assert db.session.scalar(sa.select(SavedAudience)).rules == alert.audience
    edit = staff_client.get(f"/staff/alerts/{alert.id}/edit").get_data(as_text=True)
    assert 'name="field.region" value="South" checked' in edit
    assert 'name="field.region" value="North">' in edit
    assert 'value="100"' in edit and '<option selected value="yes">' in edit
    send = staff_client.get(f"/staff/alerts/{alert.id}/send").get_data(as_text=True)
    assert "Send to 1 person: everyone confirmed, whose postal code starts with 100" in send
