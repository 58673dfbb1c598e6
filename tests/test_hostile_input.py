"""Hostile input where a person or an operator types: a clear 4xx or CLI error, never a 500."""

from __future__ import annotations

import os

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


def test_a_nul_in_a_staff_search_is_a_400(staff_client):
    """On PostgreSQL these reach a query that the driver refuses: a 500 without the guard."""
    for path in ("/staff/subscribers?q=ann%00", "/staff/suppressions?q=%00x", "/staff/subscribers/1%00"):
        response = staff_client.get(path)
        assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True), path


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


# -- the command line: one `Error:` line and a non-zero exit, never a traceback ----------------

NOT_UTF8 = os.fsdecode(b"caf\xe9")  # what Python makes of argv bytes that are not UTF-8
HUGE_ID = str(10**23)


def _refused(result, *needles: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert "Error: " in result.output and all(n in result.output for n in needles), result.output


def test_cli_refuses_an_argument_that_is_not_utf8(app, ctx):
    runner = app.test_cli_runner()
    _refused(runner.invoke(args=["alert", "create", "--subject", NOT_UTF8, "--intro", "Hi"]),
             "Invalid value for '--subject'", "not UTF-8 text")
    _refused(runner.invoke(args=["action", "close", NOT_UTF8]), "Invalid value for 'SLUG'", "not UTF-8")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_cli_refuses_a_password_that_is_not_utf8(app):
    with app.app_context():
        result = app.test_cli_runner().invoke(
            args=["create-staff", "ops@example.org", "--password-stdin"],
            input=b"caf\xe9 ferry lantern quietly\n")
        _refused(result, "the password on standard input is not UTF-8 text")
        from alerts.accounts import StaffError, create_staff

        with pytest.raises(StaffError, match="not UTF-8 text"):  # a prompt's surrogates, too
            create_staff("ops@example.org", NOT_UTF8 + " ferry lantern quietly")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 0


@pytest.mark.parametrize("args", [
    ["alert", "status", HUGE_ID], ["alert", "report", HUGE_ID], ["alert", "pause", HUGE_ID],
    ["alert", "schedule", HUGE_ID, "--at", "2099-01-01T00:00:00Z"], ["alert", "audience", HUGE_ID],
    ["alert", "remind", HUGE_ID, "--subject", "Again"], ["alert", "status", "0"],
    ["alert", "status", str(2**31)],  # past PostgreSQL's int4 id columns
])
def test_cli_refuses_an_id_past_the_database_integers(app, ctx, args):
    _refused(app.test_cli_runner().invoke(args=args), "Invalid value for 'ALERT_ID'",
             "is not in the range 1<=x<=2147483647")


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["dev", "--port", "99999"], {}, "Invalid value for '--port': 99999 is not in the range 1<=x<=65535"),
    (["dev", "--smtp-port", "0"], {}, "Invalid value for '--smtp-port'"),
    (["bounces", "serve", "--port", "99999"], {}, "Invalid value for '--port'"),
    (["bounces", "serve"], {"BOUNCE_SMTP_PORT": "70000"}, "Invalid value for '--port'"),
    (["bounces", "poll", "--url", "imaps://u:p@127.0.0.1:99999/INBOX"], {},
     "BOUNCE_IMAP_URL: the port is not 1 to 65535"),
    (["bounces", "poll", "--url", "imaps://u:p@127.0.0.1:1/INBOX", "--every", HUGE_ID], {},
     "Invalid value for '--every'"),
])
def test_cli_refuses_a_port_or_an_interval_out_of_range(app, args, env, needle):
    with app.app_context():
        _refused(app.test_cli_runner().invoke(args=args, env=env), needle)


def test_cli_refuses_a_dkim_domain_that_is_not_a_dns_name(app, ctx, tmp_path, monkeypatch):
    runner = app.test_cli_runner()
    key = tmp_path / "k.pem"
    _refused(runner.invoke(args=["dkim", "keygen", "--selector", "s1", "--domain", "bad domain",
                                 "--out", str(key)]), "Invalid value for --domain", "is not a DNS name")
    assert not key.exists()
    assert runner.invoke(args=["dkim", "keygen", "--selector", "s1", "--domain", "example.org",
                               "--out", str(key)]).exit_code == 0
    alert_id = make_alert()
    db.session.commit()
    monkeypatch.delitem(app.extensions, "alerts.dkim", raising=False)  # built anew from these
    for name, value in {"DKIM_DOMAIN": "bad domain", "DKIM_SELECTOR": "s1",
                        "DKIM_PRIVATE_KEY_FILE": str(key)}.items():
        monkeypatch.setitem(app.config, name, value)
    _refused(runner.invoke(args=["alert", "send", str(alert_id), "--yes"]),
             "DKIM_DOMAIN 'bad domain' is not a DNS name", code=1)
    monkeypatch.setitem(app.config, "DKIM_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    monkeypatch.setitem(app.config, "DKIM_DOMAIN", "example.org")
    _refused(runner.invoke(args=["alert", "send", str(alert_id), "--yes"]),
             "DKIM_PRIVATE_KEY_FILE", "cannot be read", code=1)
    db.session.rollback()
    assert db.session.get(Alert, alert_id).state == "draft"


def test_a_bad_setting_is_one_error_line_for_every_command(app):
    from click.testing import CliRunner

    from alerts.cli import main

    result = CliRunner().invoke(main, ["alert", "status", "1"], env={"MAX_CONTENT_LENGTH": "lots"})
    _refused(result, "MAX_CONTENT_LENGTH must be a whole number, got 'lots'", code=1)


def test_cli_refuses_a_staff_address_the_column_cannot_hold(app):
    with app.app_context():
        result = app.test_cli_runner().invoke(
            args=["create-staff", "a" * 300 + "@example.org", "--password-stdin"],
            input="ferry lantern quietly\n")
        _refused(result, "not an email address (at most 254 characters")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 0


def test_cli_import_with_a_report_it_cannot_write_imports_nothing(app, ctx, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("email\nann@example.org\n")
    result = app.test_cli_runner().invoke(args=[
        "subscribers", "import", str(path), "--consent", "documented", "--source", "Fair",
        "--report", str(tmp_path / "no-such-folder" / "r.csv")])
    _refused(result, "Invalid value for --report", "cannot write", "No such file or directory")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
