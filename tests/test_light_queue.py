"""The signups' light queue (a bare LPUSH after the commit, drained in batches): nothing is lost
when Redis is away at the push, when a drainer dies with a batch taken, or when a wake-up is."""

from __future__ import annotations

import socket
import time

import pytest
import redis
import sqlalchemy as sa

from alerts import queueing, tasknames, tasks
from alerts.extensions import db
from alerts.models import SignupAttempt, Subscriber
from alerts.subscribers.confirmations import SIGNUPS
from tests.helpers import subscribe

pytestmark = pytest.mark.commits


def _queued(app) -> list[int]:
    with app.app_context():
        return [int(x) for x in queueing.light_client().lrange(queueing.list_key(SIGNUPS), 0, -1)]


def _awake(app) -> bool:
    with app.app_context():
        return bool(queueing.light_client().exists(f"{queueing.list_key(SIGNUPS)}:awake"))


def _attempts(app) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(sa.select(SignupAttempt.id).order_by(SignupAttempt.id)))


def _pending(app) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(sa.select(Subscriber.email).where(Subscriber.status == "pending")))


@pytest.fixture
def wakes(monkeypatch):
    """The tasks published (by name) while the test runs; a drainer's wake-up is recorded and not
    sent, so that the session's worker (if an earlier test started it) leaves the list to the test."""
    seen: list[str] = []
    real = queueing.publish

    def recorded(task_name, *args, **kwargs):
        seen.append(task_name)
        return True if task_name == tasknames.DRAIN_SIGNUPS else real(task_name, *args, **kwargs)

    monkeypatch.setattr(queueing, "publish", recorded)
    return seen


def _dead_redis(app) -> redis.Redis:
    """A client for a port nothing listens on: every command is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return queueing.light_client_for(f"redis://127.0.0.1:{port}/0")


def test_a_signup_pushes_its_id_and_wakes_one_drainer(app, client, wakes):
    for i in range(3):
        subscribe(client, f"light{i}@example.org", apply=False, ip=f"198.51.100.{10 + i}")
    attempts = _attempts(app)
    assert len(attempts) == 3
    assert sorted(_queued(app)) == attempts  # each id once
    assert wakes.count(tasknames.DRAIN_SIGNUPS) == 1 and _awake(app)  # one wake-up for all three
    with app.app_context():
        result = tasks._drain_signups(float("inf"))
        queueing.rest(SIGNUPS, wake=tasknames.DRAIN_SIGNUPS)
    assert result == {"applied": 3, "failed": 0}
    assert _pending(app) == ["light0@example.org", "light1@example.org", "light2@example.org"]
    assert _attempts(app) == [] and _queued(app) == [] and not _awake(app)


def test_redis_away_at_the_push_loses_nothing_the_sweep_applies_it(app, client, wakes, monkeypatch):
    dead = _dead_redis(app)
    monkeypatch.setitem(app.extensions, "alerts.light_redis", dead)
    monkeypatch.setattr(queueing._light, "away", False)
    started = time.monotonic()
    resp = subscribe(client, "away@example.org", apply=False, follow=False)
    assert resp.status_code == 303  # the visitor's answer as usual, at once (one refused connect)
    assert time.monotonic() - started < 1
    assert queueing._light.away  # and the next pushes skip Redis for a second: no wait per request
    tries = []
    monkeypatch.setattr(dead, "pipeline", lambda *a, **k: tries.append(1) or pytest.fail("tried Redis"))
    resp = subscribe(client, "away2@example.org", apply=False, follow=False, ip="198.51.100.8")
    assert resp.status_code == 303 and tries == []
    assert len(_attempts(app)) == 2  # the rows are the record
    monkeypatch.delitem(app.extensions, "alerts.light_redis")  # Redis is back
    monkeypatch.setattr(queueing._light, "away", False)
    assert _queued(app) == [] and wakes == []
    app.config["SIGNUP_STALE_SECONDS"], stale = -1, app.config["SIGNUP_STALE_SECONDS"]
    try:
        with app.app_context():
            result = tasks.sweep.run()
    finally:
        app.config["SIGNUP_STALE_SECONDS"] = stale
    assert result["signups_applied"] == 2
    assert _pending(app) == ["away2@example.org", "away@example.org"]
    assert wakes.count(tasknames.SEND_CONFIRMATION) == 2  # each confirmation queued once
    assert _attempts(app) == []


def test_a_drainer_killed_with_a_batch_taken_loses_nothing(app, client, wakes, monkeypatch):
    emails = [f"killed{i}@example.org" for i in range(5)]
    for i, email in enumerate(emails):
        subscribe(client, email, apply=False, ip=f"198.51.100.{20 + i}")
    from alerts.subscribers import confirmations

    real, handled = confirmations.handle_signup, []

    def dies_on_the_third(attempt_id):
        if len(handled) == 2:
            raise SystemExit("worker killed")  # (not an Exception: nothing in the drainer catches it)
        handled.append(attempt_id)
        return real(attempt_id)

    monkeypatch.setattr(confirmations, "handle_signup", dies_on_the_third)
    with app.app_context(), pytest.raises(SystemExit):
        tasks._drain_signups(float("inf"))
    monkeypatch.setattr(confirmations, "handle_signup", real)
    # The whole batch left Redis with the drainer; two were applied, three rows are left.
    assert _queued(app) == [] and len(_pending(app)) == 2 and len(_attempts(app)) == 3
    # A new drainer finds nothing on the list; the sweep finds the rows.
    with app.app_context():
        assert tasks._drain_signups(float("inf")) == {"applied": 0, "failed": 0}
    app.config["SIGNUP_STALE_SECONDS"], stale = -1, app.config["SIGNUP_STALE_SECONDS"]
    try:
        with app.app_context():
            assert tasks.sweep.run()["signups_applied"] == 3
            assert tasks.sweep.run()["signups_applied"] == 0  # once
    finally:
        app.config["SIGNUP_STALE_SECONDS"] = stale
    assert _pending(app) == sorted(emails) and _attempts(app) == []


def test_a_lost_wake_up_is_made_good_by_the_sweep_and_the_flag_expires(app, client, wakes):
    subscribe(client, "woken@example.org", apply=False)
    assert _awake(app) and wakes == [tasknames.DRAIN_SIGNUPS]  # ... and that task is lost
    wakes.clear()
    subscribe(client, "waits@example.org", apply=False, ip="198.51.100.9")
    assert wakes == []  # a drainer is (thought) awake: no second wake-up
    with app.app_context():
        ttl = queueing.light_client().ttl(f"{queueing.list_key(SIGNUPS)}:awake")
        assert 0 < ttl <= queueing.AWAKE_SECONDS  # a dead drainer's flag goes by itself
        result = tasks.sweep.run()  # the sweep drains the list without waiting for the rows to age
    assert result["signups_drained"] == 2 and result["signups_applied"] == 0
    assert _pending(app) == ["waits@example.org", "woken@example.org"]
    assert "applied 2 signups left on their queue" in tasks.sweep_words(result)


def test_a_push_after_the_drainers_last_take_gets_its_own_wake_up(app, client, wakes):
    subscribe(client, "first@example.org", apply=False)
    with app.app_context():
        assert tasks._drain_signups(float("inf"))["applied"] == 1  # the list is empty now...
    wakes.clear()
    # ...and this one came before the drainer stopped:
    subscribe(client, "late@example.org", apply=False, ip="198.51.100.9")
    assert wakes == []  # (the flag was still up)
    with app.app_context():
        queueing.rest(SIGNUPS, wake=tasknames.DRAIN_SIGNUPS)
    assert wakes == [tasknames.DRAIN_SIGNUPS] and _awake(app)  # another drainer woken for it
    with app.app_context():
        assert tasks._drain_signups(float("inf"))["applied"] == 1  # (that drainer)
        queueing.rest(SIGNUPS, wake=tasknames.DRAIN_SIGNUPS)  # nothing on the list: only the flag goes
    assert wakes.count(tasknames.DRAIN_SIGNUPS) == 1 and not _awake(app)


def test_a_rolled_back_signup_pushes_nothing(app, wakes):
    from alerts.subscribers import confirmations, subscriptions

    with app.test_request_context("/subscribe", method="POST"):
        attempt = subscriptions.record_attempt("rolled@example.org", subscriptions.Request(None, None))
        confirmations.queue_signup(attempt)
        db.session.rollback()
        db.session.commit()
    assert _queued(app) == [] and wakes == [] and _attempts(app) == []


def test_a_drainer_woken_through_celery_applies_the_signups(app, client, smtp, celery_worker):
    for i in range(4):
        subscribe(client, f"worker{i}@example.org", apply=False, ip=f"198.51.100.{30 + i}")
    smtp.handler.wait_for(4, timeout=20)
    celery_worker.wait_idle()
    mailed = sorted(r for m in smtp.messages for r in m.rcpt_tos)
    assert mailed == [f"worker{i}@example.org" for i in range(4)]
    assert _attempts(app) == [] and _queued(app) == [] and not _awake(app)
