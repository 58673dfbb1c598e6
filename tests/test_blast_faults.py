"""Faults during a blast: each ends with exactly one message per subscriber and counts that match."""

from __future__ import annotations

import collections
import re
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Action, Delivery, Subscriber, Suppression
from alerts.testing.mailcatcher import MailCatcher
from tests.helpers import add_confirmed, blasts, make_alert, wait_for_state
from tests.processes import PostgresServer, WorkerProcess, send_task, worker_env

pytestmark = pytest.mark.slow


def per_recipient(catcher) -> collections.Counter:
    return collections.Counter(r for m in catcher.messages for r in m.rcpt_tos)


def assert_exactly_once(catcher, emails, status):
    counts = per_recipient(catcher)
    dupes = {e: n for e, n in counts.items() if n > 1}
    assert not dupes, f"sent twice: {list(dupes)[:5]}"
    assert set(counts) == set(emails), f"missing: {sorted(set(emails) - set(counts))[:5]}"
    assert status["sent"] == len(emails)
    assert status["queued"] == status["sending"] == 0


def sent_count(alert_id: int) -> int:
    db.session.rollback()
    return blasts.counts(alert_id)["sent"]


def test_worker_killed_mid_blast_then_restarted(app, ctx, smtp, workers, tmp_path):
    emails = add_confirmed(2000)
    alert_id = make_alert()
    stall = threading.Event()
    release = threading.Event()

    def data_reply(rcpt_tos):
        # The server stalls on one message, as a slow relay would; the worker is killed
        # while it waits for the answer, so that message never got its 250.
        if rcpt_tos == [emails[1234]] and not release.is_set():
            stall.set()
            release.wait(30)
            return "451 4.3.0 connection lost"
        return None

    smtp.handler.data_reply = data_reply
    # One connection, so no other message is half-way through DATA when the server
    # stalls (a message the server took after its client died would be the window's
    # other side, which no sender can close).
    first = workers.start(name="doomed", concurrency=1)
    workers.launch(alert_id)
    assert stall.wait(60), "the blast never reached the stalled message"
    # Everything that got a 250 is committed within one flush interval, even mid-stall.
    deadline = time.monotonic() + 10
    while sent_count(alert_id) < len(smtp.messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    accepted = len(smtp.messages)
    assert sent_count(alert_id) == accepted
    first.kill()
    release.set()
    assert 0 < accepted < 2000
    db.session.rollback()
    assert blasts.counts(alert_id)["sending"] > 0  # rows the dead worker had claimed

    workers.start(name="rescuer")  # its beat sweeps the dead worker's rows back
    status = wait_for_state(alert_id, timeout=120)
    assert status["state"] == "sent", status
    assert_exactly_once(smtp, emails, status)


def test_redis_restarted_mid_blast(app, ctx, smtp, workers):
    emails = add_confirmed(1500)
    alert_id = make_alert()
    smtp.handler.data_reply = lambda rcpt: time.sleep(0.002)  # a blast that takes a while
    workers.start(name="w1")
    workers.launch(alert_id)
    deadline = time.monotonic() + 60
    while sent_count(alert_id) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers.redis.restart()  # every queued batch task in Redis is gone
    status = wait_for_state(alert_id, timeout=120)
    assert status["state"] == "sent", status
    assert_exactly_once(smtp, emails, status)


def test_smtp_refusing_connections_for_a_while(app, ctx, celery_worker, monkeypatch):
    down = MailCatcher()  # its port is reserved, nothing listens yet
    monkeypatch.setitem(app.config, "SMTP_URL", down.url)
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 50)
    emails = add_confirmed(200)
    alert_id = make_alert()
    blasts.launch(alert_id)
    time.sleep(3)
    db.session.rollback()
    status = blasts.status(alert_id)
    assert status["state"] == "sending" and status["sent"] == 0
    assert status["queued"] + status["sending"] == 200 and status["failed"] == 0
    down.start()
    try:
        status = wait_for_state(alert_id, timeout=60)
        assert status["state"] == "sent", status
        assert_exactly_once(down, emails, status)
    finally:
        down.stop()


def test_451_is_retried_and_550_fails_suppresses_and_is_not_retried(app, ctx, smtp, celery_worker):
    emails = add_confirmed(120)
    soft = set(emails[10:20])
    hard = set(emails[50:55])
    tries: collections.Counter = collections.Counter()

    def rcpt_reply(address):
        tries[address] += 1
        if address in hard:
            return "550 5.1.1 No such user"
        if address in soft and tries[address] <= 2:
            return "451 4.7.1 Greylisted, try again later"
        return None

    smtp.handler.rcpt_reply = rcpt_reply
    alert_id = make_alert()
    blasts.launch(alert_id)
    status = wait_for_state(alert_id, timeout=90)
    assert status["state"] == "sent", status
    assert (status["sent"], status["failed"], status["skipped"]) == (115, 5, 0)
    counts = per_recipient(smtp)
    assert set(counts) == set(emails) - hard and max(counts.values()) == 1
    assert all(tries[a] == 3 for a in soft)  # two 451s, then accepted
    assert all(tries[a] == 1 for a in hard)  # a 5xx is never retried
    db.session.rollback()
    suppressed = set(db.session.scalars(sa.select(Suppression.email)))
    assert suppressed == hard
    errors = db.session.scalars(
        sa.select(Delivery.error).join(Subscriber).where(Subscriber.email.in_(hard))
    ).all()
    assert all(e.startswith("550") for e in errors)
    # The suppressed addresses are left out of the next blast.
    second = make_alert("Second alert")
    assert blasts.start_blast(second) == 115


def _slow_sink(smtp, seconds=0.003):
    smtp.handler.data_reply = lambda rcpt: time.sleep(seconds)


def _blast_under_way(app, smtp, monkeypatch) -> tuple[int, list[str]]:
    """600 subscribers, a slow server, and the blast 50 messages in."""
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 100)
    emails = add_confirmed(600)
    alert_id = make_alert()
    _slow_sink(smtp)
    blasts.launch(alert_id)
    while sent_count(alert_id) < 50:
        time.sleep(0.02)
    return alert_id, emails


def _until_nothing_is_sending(alert_id: int) -> None:
    deadline = time.monotonic() + 20
    while blasts.counts(alert_id)["sending"] and time.monotonic() < deadline:
        db.session.rollback()
        time.sleep(0.05)


def test_pause_then_resume(app, ctx, smtp, celery_worker, monkeypatch):
    alert_id, emails = _blast_under_way(app, smtp, monkeypatch)
    blasts.pause(alert_id)
    _until_nothing_is_sending(alert_id)
    paused = wait_for_state(alert_id, ("paused",))
    assert paused["state"] == "paused" and paused["sending"] == 0
    assert 0 < paused["sent"] < 600
    time.sleep(1)
    assert sent_count(alert_id) == paused["sent"] == len(smtp.messages)  # nothing moves
    blasts.relaunch(alert_id)
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent", status
    assert_exactly_once(smtp, emails, status)


def test_cancel_stops_the_blast_and_skips_the_rest(app, ctx, smtp, celery_worker, monkeypatch):
    alert_id, _ = _blast_under_way(app, smtp, monkeypatch)
    blasts.cancel(alert_id)
    _until_nothing_is_sending(alert_id)
    time.sleep(0.5)
    db.session.rollback()
    status = blasts.status(alert_id)
    assert status["state"] == "cancelled"
    assert status["queued"] == status["sending"] == 0
    assert status["sent"] + status["skipped"] == 600 and status["skipped"] > 0
    counts = per_recipient(smtp)
    assert sum(counts.values()) == status["sent"] and max(counts.values()) == 1
    with pytest.raises(blasts.BlastError):
        blasts.relaunch(alert_id)


def test_unsubscribe_during_blast_is_skipped(app, ctx, smtp, celery_worker, monkeypatch):
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 50)
    emails = add_confirmed(300)
    alert_id = make_alert()
    gate = threading.Event()
    smtp.handler.data_reply = lambda rcpt: (gate.wait(20), None)[1]
    blasts.launch(alert_id)
    time.sleep(0.5)  # the first batches are claimed and stalled at the server
    leaving = emails[200:210]
    from alerts.subscribers import subscriptions

    for sub in db.session.scalars(sa.select(Subscriber).where(Subscriber.email.in_(leaving))):
        subscriptions.unsubscribe(sub.id, subscriptions.Request(ip=None, user_agent=None))
    db.session.commit()
    gate.set()
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent"
    assert (status["sent"], status["skipped"]) == (290, 10)
    assert set(per_recipient(smtp)) == set(emails) - set(leaving)


def test_closed_action_is_left_out(app, ctx, smtp, celery_worker):
    add_confirmed(5)
    alert_id = make_alert()
    rikers = db.session.scalar(sa.select(Action).where(Action.title.like("%Rikers%")))
    rikers.is_open = False
    db.session.commit()
    blasts.launch(alert_id)
    assert wait_for_state(alert_id)["state"] == "sent"
    for m in smtp.handler.wait_for(5, timeout=10):
        html = m.message.get_body(("html",)).get_content()
        assert "Rikers" not in html
        assert "Detention is No Place for a Child" in html


def test_concurrent_batches_never_claim_the_same_row(app, ctx, smtp):
    """Four workers on one range at once: every row is sent by exactly one of them."""
    emails = add_confirmed(400)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    ids = db.session.scalars(sa.select(Delivery.id).where(Delivery.alert_id == alert_id)).all()
    results = []
    barrier = threading.Barrier(4)

    def run():
        with app.app_context():
            barrier.wait()
            results.append(blasts.send_batch(alert_id, min(ids), max(ids)))
            db.session.remove()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.sent for r in results) == 400
    status = wait_for_state(alert_id, timeout=5)
    assert status["state"] == "sent"
    assert_exactly_once(smtp, emails, status)


@pytest.fixture
def postgres(tmp_path):
    server = PostgresServer(tmp_path).init().start()
    yield server
    server.remove()


@pytest.fixture
def pg_app(app, smtp, own_redis, postgres):
    """The app on the test's own PostgreSQL (schema by migrations); its workers use the
    test's own Redis. This process keeps the session's Redis: the rate limiter is one
    extension for every app, and the next test resets it there."""
    from flask_migrate import upgrade

    from alerts import create_app

    other = create_app({**{k: app.config[k] for k in (
        "SECRET_KEY", "SECRET_KEYS", "BASE_URL", "MAIL_FROM", "ORG_NAME", "ORG_POSTAL_ADDRESS",
        "REDIS_URL", "RATELIMIT_KEY_PREFIX")},
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": postgres.url,
        "SMTP_URL": smtp.url, "CELERY_TASK_QUEUE": f"pg-{uuid.uuid4().hex[:8]}"})
    app.extensions["celery"].set_default()  # the session's worker keeps running the tests' app
    app.extensions["celery"].set_current()
    with other.app_context():
        upgrade()
        yield other
        db.session.remove()
        db.engine.dispose()


def _pg_worker(pg_app, own_redis, smtp, tmp_path, *, beat: bool, **extra: str) -> WorkerProcess:
    """A worker process on the test's PostgreSQL, with production's lease (30 s)."""
    env = worker_env(pg_app, redis_url=own_redis.url, smtp_url=smtp.url,
                     queue=pg_app.config["CELERY_TASK_QUEUE"], engine_defaults=True, **extra)
    worker = WorkerProcess(env, tmp_path / "pg-worker.log", beat=beat, concurrency=4)
    worker.wait_ready()
    return worker


def test_postgres_restarted_mid_blast(pg_app, smtp, own_redis, postgres, tmp_path):
    """PostgreSQL stopped the hard way mid-blast and started again 4 s later: the batches
    keep their 250s and write them once it is back, within the lease.

    The bound: a blast promises at most one flush interval's worth of second copies
    (BLAST_FLUSH_MS of 250s) when a worker dies between a 250 and its commit. Here no worker
    dies and the database is back well within the lease (BLAST_STUCK_SECONDS, 30 s), so no
    250 may be forgotten at all: the test asserts none is sent twice.
    """
    emails = add_confirmed(3000)
    alert_id = make_alert()
    smtp.handler.data_reply = lambda rcpt: time.sleep(0.001)  # a blast of several seconds
    # The sweep looks every second and re-dispatches a blast that stopped moving after 4 s
    # (a batch whose claim was cut mid-commit: its rows come back after the lease).
    worker = _pg_worker(pg_app, own_redis, smtp, tmp_path, beat=True,
                        SWEEP_INTERVAL_SECONDS="1", BLAST_STALL_SECONDS="4")
    try:
        blasts.start_blast(alert_id)
        db.session.close()
        send_task(own_redis.url, pg_app.config["CELERY_TASK_QUEUE"], "alerts.tasks.dispatch_blast",
                  alert_id)
        assert smtp.handler.wait_for(800, timeout=60), "the blast never got going"
        postgres.stop("immediate")
        stopped_at = len(smtp.messages)
        outage_ends = time.monotonic() + 4
        while time.monotonic() < outage_ends:
            time.sleep(0.1)
        postgres.start()
        assert stopped_at < 3000, "the blast ended before the database went away"
        status = wait_for_state(alert_id, timeout=120)
    finally:
        worker.stop()
    assert status["state"] == "sent", status
    counts = per_recipient(smtp)
    dupes = {e: n for e, n in counts.items() if n > 1}
    assert set(counts) == set(emails), f"missing: {sorted(set(emails) - set(counts))[:5]}"
    assert not dupes, f"{len(dupes)} sent twice, e.g. {list(dupes)[:5]}"
    assert status["sent"] == 3000


def test_a_batch_that_finds_postgres_away_is_tried_again(pg_app, smtp, own_redis, postgres,
                                                         tmp_path):
    """A batch task that starts while the database is away is tried again shortly (with the
    tasks' backoff), not left for the sweep's stall check (45 s; here no beat at all)."""
    emails = add_confirmed(50)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    first, last = next(blasts.batch_ranges(alert_id, 100))
    db.session.close()
    db.engine.dispose()
    worker = _pg_worker(pg_app, own_redis, smtp, tmp_path, beat=False)
    try:
        postgres.stop("immediate")
        send_task(own_redis.url, pg_app.config["CELERY_TASK_QUEUE"], "alerts.tasks.send_batch",
                  alert_id, first, last)
        deadline = time.monotonic() + 30
        ended = re.compile(rb"send_batch\[[^\]]+\] (raised|retry)")  # its first run is over
        while not ended.search(worker.logfile.read_bytes()):
            assert time.monotonic() < deadline, "the batch never ran"
            time.sleep(0.05)
        postgres.start()
        status = wait_for_state(alert_id, timeout=20)
    finally:
        worker.stop()
    assert status["state"] == "sent", status
    assert set(per_recipient(smtp)) == set(emails)
