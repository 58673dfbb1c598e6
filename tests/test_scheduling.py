"""Scheduled sends: the CLI, the staff page in the organisation's time zone, and beat starting them once."""

from __future__ import annotations

import collections
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alerts.blasts import scheduling
from alerts.extensions import db
from alerts.models import Alert, utcnow
from tests.helpers import add_confirmed, csrf_token, make_alert, wait_for_state


def _status(runner, alert_id: int) -> dict:
    return json.loads(runner.invoke(args=["alert", "status", str(alert_id), "--json"]).stdout)


def test_cli_schedule_reschedule_and_cancel(app, ctx):
    runner = app.test_cli_runner()
    alert_id = make_alert()
    assert _status(runner, alert_id)["scheduled_for"] is None
    out = runner.invoke(args=["alert", "schedule", str(alert_id), "--at", "2099-03-01T09:30:00+01:00"])
    assert out.exit_code == 0, out.output
    assert _status(runner, alert_id)["scheduled_for"] == "2099-03-01T08:30:00+00:00"
    runner.invoke(args=["alert", "schedule", str(alert_id), "--at", "2099-03-02T10:00:00Z"])
    assert _status(runner, alert_id)["scheduled_for"] == "2099-03-02T10:00:00+00:00"
    out = runner.invoke(args=["alert", "schedule", str(alert_id), "--cancel"])
    assert out.exit_code == 0 and "unscheduled" in out.output
    data = _status(runner, alert_id)
    assert (data["state"], data["scheduled_for"]) == ("draft", None)


def test_cli_create_with_send_at(app, ctx):
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-actions"])
    out = runner.invoke(args=["alert", "create", "--subject", "Later", "--intro", "Hi",
                              "--send-at", "2099-01-01T12:00:00-05:00"])
    assert out.exit_code == 0, out.output
    alert_id = int(out.stdout.strip())
    assert _status(runner, alert_id)["scheduled_for"] == "2099-01-01T17:00:00+00:00"


@pytest.mark.parametrize("args, message", [
    (["--at", "2099-01-01T09:00"], "has no time zone"),
    (["--at", "tomorrow"], "is not an ISO 8601 time"),
    (["--at", "2001-01-01T09:00:00Z"], "is in the past"),
    ([], "give either --at ISO8601 or --cancel"),
])
def test_cli_schedule_refuses_bad_times_and_changes_nothing(app, ctx, args, message):
    runner = app.test_cli_runner()
    alert_id = make_alert()
    out = runner.invoke(args=["alert", "schedule", str(alert_id), *args])
    assert out.exit_code != 0 and message in out.output
    assert _status(runner, alert_id)["scheduled_for"] is None


def test_create_with_a_bad_send_at_creates_nothing(app, ctx):
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-actions"])
    out = runner.invoke(args=["alert", "create", "--subject", "Later", "--intro", "Hi",
                              "--send-at", "2099-01-01 noon"])
    assert out.exit_code != 0 and "is not an ISO 8601 time" in out.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_only_a_draft_can_be_scheduled(app, ctx, smtp, celery_worker):
    runner = app.test_cli_runner()
    add_confirmed(2)
    alert_id = make_alert()
    runner.invoke(args=["alert", "send", str(alert_id), "--wait"])
    out = runner.invoke(args=["alert", "schedule", str(alert_id), "--at", "2099-01-01T00:00:00Z"])
    assert out.exit_code != 0 and "only a draft can be scheduled" in out.output


@pytest.mark.commits
def test_a_due_alert_is_started_exactly_once_by_concurrent_beats(app, ctx):
    """Four callers at the same moment (beats on several machines): one launch."""
    add_confirmed(20)
    alert_id = make_alert()
    scheduling.schedule(alert_id, datetime.now(UTC) + timedelta(seconds=1))
    db.session.commit()
    assert scheduling.start_due() == []  # not yet
    # Its time comes (rather than waiting for it): it was due a moment ago.
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(scheduled_for=utcnow()))
    db.session.commit()
    started: list[int] = []
    barrier = threading.Barrier(4)

    def beat():
        with app.app_context():
            barrier.wait()
            try:
                started.extend(scheduling.start_due())
            finally:
                db.session.remove()

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert started == [alert_id]
    db.session.rollback()
    alert = db.session.get(Alert, alert_id)
    # The session's worker may have sent all 20 already: started is what matters, and once.
    assert alert.state in ("sending", "sent") and alert.started_at >= alert.scheduled_for
    assert scheduling.start_due() == []


def _scheduled_for(app, alert_id: int):
    with app.app_context():
        return db.session.get(Alert, alert_id).scheduled_for


def test_staff_schedule_in_the_org_time_zone(app, staff_client, monkeypatch):
    monkeypatch.setitem(app.config, "ORG_TIMEZONE", "America/New_York")
    with app.app_context():
        alert_id = make_alert()
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "America/New_York" in page and 'type="datetime-local"' in page
    token = csrf_token(staff_client, f"/staff/alerts/{alert_id}")
    res = staff_client.post(f"/staff/alerts/{alert_id}/schedule",
                            data={"at": "2099-07-04T09:00", "csrf_token": token})
    assert res.status_code == 303
    assert _scheduled_for(app, alert_id) == datetime(2099, 7, 4, 13, 0, tzinfo=UTC)  # EDT: UTC-4
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Scheduled for Sat 04 Jul 2099, 09:00 EDT (13:00 UTC)" in page
    res = staff_client.post(f"/staff/alerts/{alert_id}/unschedule", data={"csrf_token": token})
    assert res.status_code == 303
    assert _scheduled_for(app, alert_id) is None


@pytest.mark.parametrize("value, message", [
    ("", "Choose a date and time."),
    ("next week", "Enter a date and time like"),
    ("2001-01-01T09:00", "is in the past"),
])
def test_staff_schedule_bad_input_gets_400_naming_it(app, staff_client, value, message):
    with app.app_context():
        alert_id = make_alert()
    token = csrf_token(staff_client, f"/staff/alerts/{alert_id}")
    res = staff_client.post(f"/staff/alerts/{alert_id}/schedule",
                            data={"at": value, "csrf_token": token})
    assert res.status_code == 400
    page = res.get_data(as_text=True)
    assert message in page and "has-error" in page
    assert _scheduled_for(app, alert_id) is None


@pytest.mark.slow
def test_scheduled_send_with_two_beat_processes_is_sent_once_on_time(app, ctx, smtp, workers):
    emails = add_confirmed(50)
    alert_id = make_alert()
    for name in ("beat1", "beat2"):
        workers.start(name=name, concurrency=1, SCHEDULE_INTERVAL_SECONDS="1")
    time.sleep(8)  # both beats up and ticking
    when = datetime.now(UTC) + timedelta(seconds=4)
    scheduling.schedule(alert_id, when)
    db.session.commit()
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent", status
    db.session.rollback()
    alert = db.session.get(Alert, alert_id)
    late = (alert.started_at - when).total_seconds()
    assert 0 <= late < 3, f"started {late:.1f} s after its time"
    counts = collections.Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert set(counts) == set(emails) and max(counts.values()) == 1

