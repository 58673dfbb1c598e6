"""Hostile input where a person or an operator types: a clear 4xx or CLI error, never a 500."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Alert, StaffUser, Subscriber
from tests.helpers import csrf_token, make_alert

# -- NUL characters (PostgreSQL refuses them in a string; the guard runs before the database) --


@pytest.mark.parametrize("path", [
    "/confirm/abc%00def", "/unsubscribe/x%00", "/?ref=a%00b", "/subscribe?email=%00",
    "/staff/subscribers?q=ann%00", "/static/staff%00.js",
])
def test_a_nul_in_the_path_or_the_query_is_a_400(client, path):
    response = client.get(path)
    assert response.status_code == 400, path
    assert "NUL character" in response.get_data(as_text=True)


def test_a_nul_in_a_form_field_is_a_400_and_nothing_is_written(app, client):
    token = csrf_token(client)
    response = client.post("/subscribe", data={"email": "ann\x00@example.org", "website": "",
                                               "csrf_token": token})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    response = client.post("/subscribe", data={"email": "ann@example.org", "web\x00site": "",
                                               "csrf_token": token})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_a_nul_in_a_json_body_is_a_400(client):
    response = client.post("/subscribe", json={"email": ["a@example.org", {"k": "v\x00"}]},
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)


# -- impossible dates on schedule --------------------------------------------------------------


@pytest.mark.parametrize(("at", "message"), [
    ("2026-02-30T10:00:00Z", "day is out of range for month"),
    ("99999-01-01T10:00:00Z", "is not an ISO 8601 time"),
    ("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999"),
    ("9999-12-31T10:00:00Z", "too far ahead"),
])
def test_cli_schedule_and_create_refuse_a_time_off_the_calendar(app, ctx, at, message):
    runner = app.test_cli_runner()
    alert_id = make_alert()
    out = runner.invoke(args=["alert", "schedule", str(alert_id), "--at", at])
    assert out.exit_code == 1 and message in out.output and out.output.startswith("Error: "), out.output
    assert isinstance(out.exception, SystemExit)
    assert db.session.get(Alert, alert_id).scheduled_for is None
    runner.invoke(args=["seed-actions"])
    created = runner.invoke(args=["alert", "create", "--subject", "Later", "--intro", "Hi", "--send-at", at])
    assert created.exit_code == 2 and message in created.output, created.output
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 1


@pytest.mark.parametrize(("at", "zone", "message"), [
    ("2026-02-30T10:00", "UTC", "day is out of range for month"),
    ("2027-13-01T10:00", "UTC", "month must be in 1..12"),
    ("9999-12-31T23:00", "America/New_York", "outside the years 1 to 9999"),
    ("0001-01-01T00:30", "Europe/Berlin", "outside the years 1 to 9999"),
])
def test_staff_schedule_refuses_a_time_off_the_calendar(app, staff_client, monkeypatch, at, zone, message):
    monkeypatch.setitem(app.config, "ORG_TIMEZONE", zone)
    with app.app_context():
        alert_id = make_alert()
    token = csrf_token(staff_client, f"/staff/alerts/{alert_id}")
    res = staff_client.post(f"/staff/alerts/{alert_id}/schedule", data={"at": at, "csrf_token": token})
    assert res.status_code == 400 and message in res.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Alert, alert_id).scheduled_for is None


# -- staff passwords ---------------------------------------------------------------------------


@pytest.mark.parametrize(("password", "why"), [
    ("aaaaaaaaaa", "too short: it needs at least 12 characters"),
    ("aaaaaaaaaaaaaaaa", 'Repeats like "aaa" are easy to guess'),
    ("password1234", "This is a very common password"),
    ("qwertyuiop12", "This is similar to a commonly used password"),
    ("abcdefghijklmnop", "too easy to guess"),
    ("kidsrightsnewsdesk", "too easy to guess"),  # the account's own address, rearranged
])
def test_create_staff_refuses_a_weak_password_saying_why(app, password, why):
    with app.app_context():
        result = app.test_cli_runner().invoke(
            args=["create-staff", "newsdesk@kidsrights.example.org", "--password-stdin"],
            input=password + "\n")
        assert result.exit_code == 2 and why in result.output, result.output
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 0


def test_a_new_password_is_held_to_the_same_policy(app, staff):
    from alerts.accounts import StaffError, set_password

    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser))
        before = user.password_hash
        with pytest.raises(StaffError, match="too easy to guess"):
            set_password(user, "123456789012")
        assert user.password_hash == before
        set_password(user, "ferry lantern quietly 42")
        db.session.rollback()
