"""A large list's recipients are fixed a chunk at a time while the first batches go out.

The send request fixes a tenth of BLAST_FILL_CHUNK subscribers; a fill task fixes the rest,
chunk by chunk, queuing each chunk's batches as it lands. Nothing is lost or doubled on the
way, and a blast ends only once every chunk is fixed.
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from alerts import queueing
from alerts.blasts import dispatch, recovery, state
from alerts.blasts.state import expected_recipients, filling, finish_if_done, fix_next_chunk
from alerts.extensions import db
from alerts.models import Alert, AlertState, Delivery, DeliveryStatus, Subscriber, SubscriberStatus, utcnow
from tests.helpers import add_confirmed, approve, blasts, make_alert, wait_for_state


def rows(alert_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count()).where(Delivery.alert_id == alert_id))


def _launched_in_chunks(app, monkeypatch) -> int:
    """25 subscribers, chunks of 10: the send fixes the first, the fill the rest."""
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 10)
    add_confirmed(25)
    alert_id = make_alert()
    blasts.launch(alert_id)
    return alert_id


def _first_chunk_sent(alert_id: int) -> None:
    db.session.execute(sa.update(Delivery).where(Delivery.alert_id == alert_id)
                       .values(status=DeliveryStatus.SENT, sent_at=utcnow()))


@pytest.fixture
def queued(monkeypatch) -> list[tuple[str, tuple]]:
    """Tasks as they would reach the broker (after each commit), kept here instead."""
    sent: list[tuple[str, tuple]] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: sent.append((name, tuple(args))))
    return sent


def test_send_fixes_only_the_first_chunk_and_reports_the_whole_list(app, ctx, monkeypatch, queued):
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 400)
    add_confirmed(130)
    alert_id = make_alert()
    assert blasts.launch(alert_id) is None  # not counted before the commit: that takes seconds
    assert rows(alert_id) == 40  # a tenth of a chunk: the first batches' worth
    assert [name for name, _ in queued] == ["alerts.tasks.dispatch_blast"]
    assert blasts.status(alert_id)["total"] == 40  # what is fixed, until it is counted
    assert expected_recipients(db.session.get(Alert, alert_id)) == 130  # the fill task does this
    db.session.commit()
    status = blasts.status(alert_id)
    assert status["filling"] and (status["total"], status["queued"]) == (130, 130)


def test_fill_chains_through_the_list_queuing_each_chunks_batches_once(app, ctx, monkeypatch, queued):
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 40)
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 25)
    add_confirmed(130)
    alert_id = make_alert()
    blasts.launch(alert_id)
    assert dispatch.dispatch(alert_id) == 1  # the send request's 4 rows
    assert queued[-1] == ("alerts.tasks.fill_blast", (alert_id,))
    steps = 0
    while queued and queued[-1][0] == "alerts.tasks.fill_blast":
        queued.pop()
        dispatch.fill(alert_id)
        steps += 1
    assert steps == 4 and rows(alert_id) == 130  # 4 + 40 + 40 + 40 + 6
    batches = [args[1:] for name, args in queued if name == "alerts.tasks.send_batch"]
    covered = collections.Counter()
    for first, last in batches:
        covered.update(db.session.scalars(sa.select(Delivery.id).where(
            Delivery.alert_id == alert_id, Delivery.id.between(first, last))))
    assert len(covered) == 130 and set(covered.values()) == {1}  # every row in exactly one batch
    assert not filling(db.session.get(Alert, alert_id))
    assert dispatch.fill(alert_id) == 0  # a late duplicate fill does nothing


def test_who_qualifies_is_decided_when_the_chunk_is_fixed(app, ctx, monkeypatch, queued):
    """Leaving the list before one's chunk means no message; joining after the send began, none either."""
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 10)
    emails = add_confirmed(30)
    alert_id = make_alert()
    blasts.launch(alert_id)
    leaver = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == emails[-1]))
    leaver.status = SubscriberStatus.UNSUBSCRIBED
    db.session.add(Subscriber(email="latecomer@example.org", status=SubscriberStatus.CONFIRMED))
    db.session.commit()
    while dispatch.fill(alert_id):
        pass
    got = set(db.session.scalars(
        sa.select(Subscriber.email).join(Delivery).where(Delivery.alert_id == alert_id)))
    assert got == set(emails[:-1])


def test_a_chunk_fixed_twice_adds_nothing(app, ctx, monkeypatch):
    """Two fills racing on one cursor (SQLite cannot lock the alert row): the unique key holds."""
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 10)
    add_confirmed(25)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    alert = db.session.get(Alert, alert_id)
    before = alert.fill_after
    fix_next_chunk(alert, 10)
    alert.fill_after = before  # the racing fill read the same cursor
    fix_next_chunk(alert, 10)
    db.session.commit()
    assert rows(alert_id) == 11


def test_a_blast_is_not_sent_while_recipients_remain_unfixed(app, ctx, monkeypatch, queued):
    alert_id = _launched_in_chunks(app, monkeypatch)
    _first_chunk_sent(alert_id)
    db.session.commit()
    assert not finish_if_done(alert_id)  # every row sent, but 24 people have no row yet
    dispatch.fill(alert_id)  # (the first fill counts them)
    assert blasts.status(alert_id)["queued"] == 24


def test_a_lost_fill_task_is_picked_up_by_the_sweep(app, ctx, monkeypatch, queued):
    alert_id = _launched_in_chunks(app, monkeypatch)
    # The first chunk went out; the fill task was lost (a Redis restart): nothing is queued.
    _first_chunk_sent(alert_id)
    long_ago = utcnow() - timedelta(seconds=app.config["BLAST_STALL_SECONDS"] + 5)
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(last_dispatch_at=long_ago))
    db.session.commit()
    queued.clear()
    assert recovery.sweep()["redispatched"] == [alert_id]
    assert ("alerts.tasks.fill_blast", (alert_id,)) in queued


def test_paused_blast_stops_filling_and_resume_goes_on(app, ctx, monkeypatch, queued):
    alert_id = _launched_in_chunks(app, monkeypatch)
    blasts.pause(alert_id)
    assert dispatch.fill(alert_id) == 0 and rows(alert_id) == 1
    queued.clear()
    blasts.relaunch(alert_id)
    assert queued == [("alerts.tasks.dispatch_blast", (alert_id,))]
    dispatch.dispatch(alert_id)
    assert ("alerts.tasks.fill_blast", (alert_id,)) in queued


@pytest.mark.commits
def test_a_pause_does_not_wait_for_the_first_fills_count(app, ctx, monkeypatch, queued):
    """Counting a million-person audience takes seconds: the first fill counts before it takes
    the alert's row lock, so staff pressing Pause meanwhile are answered at once."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite has no row locks: the wait needs PostgreSQL (CI runs both)")
    alert_id = _launched_in_chunks(app, monkeypatch)
    db.session.commit()
    counting, counted = threading.Event(), threading.Event()
    real_count = state.recipient_count

    def slow_count(*args, **kwargs):
        n = real_count(*args, **kwargs)
        counting.set()
        counted.wait(10)
        return n

    monkeypatch.setattr(state, "recipient_count", slow_count)
    out: dict = {}

    def fill() -> None:
        with app.app_context():
            try:
                out["batches"] = dispatch.fill(alert_id)
            finally:
                db.session.remove()

    filler = threading.Thread(target=fill)
    filler.start()
    try:
        assert counting.wait(10)
        threading.Timer(3, counted.set).start()  # the count "ends" three seconds from now
        began = time.monotonic()
        blasts.pause(alert_id)
        db.session.commit()
        waited = time.monotonic() - began
    finally:
        counted.set()
        filler.join(15)
    assert waited < 2, f"the pause waited {waited:.1f} s for the count"
    assert out["batches"] == 0 and rows(alert_id) == 1  # the fill saw the pause: no chunk fixed
    assert db.session.get(Alert, alert_id).recipients_expected == 25  # the count was kept


def test_cancelled_while_filling_ends_with_what_was_fixed(app, ctx, monkeypatch, queued):
    alert_id = _launched_in_chunks(app, monkeypatch)
    blasts.cancel(alert_id)
    assert dispatch.fill(alert_id) == 0 and rows(alert_id) == 1
    status = blasts.status(alert_id)
    assert status["state"] == AlertState.CANCELLED and status["total"] == 1 and not status["filling"]


@pytest.mark.slow
def test_chunked_blast_through_a_real_worker_reaches_everyone_once(app, ctx, smtp, celery_worker,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 70)
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 30)
    emails = add_confirmed(400)
    alert_id = make_alert()
    assert blasts.launch(alert_id) is None
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent" and (status["sent"], status["failed"]) == (400, 0), status
    counts = collections.Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert set(counts) == set(emails) and max(counts.values()) == 1


def test_batch_size_is_the_largest_for_long_lists_and_spread_for_short_ones():
    assert dispatch.batch_size(1_000_000, 2000, 8) == 2000
    assert dispatch.batch_size(20_000, 2000, 8) == 2000
    assert dispatch.batch_size(8_000, 2000, 8) == 1000  # eight batches, not four
    assert dispatch.batch_size(600, 2000, 8) == 75
    assert dispatch.batch_size(120, 2000, 8) == dispatch.SMALLEST_BATCH  # not eight of 15
    assert dispatch.batch_size(3, 2000, 8) == dispatch.SMALLEST_BATCH
    assert dispatch.batch_size(600, 25, 8) == 25  # the largest wins over the smallest
    assert dispatch.batch_size(0, 2000, 8) == dispatch.SMALLEST_BATCH
    assert dispatch.batch_size(600, 2000, 0) == 600  # 0 means one batch, not a division by zero


def test_a_short_list_is_spread_over_several_batches_and_a_long_one_capped(app, ctx, monkeypatch, queued):
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 10_000)
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 150)
    add_confirmed(1000)
    alert_id = make_alert()
    approve(alert_id)  # 1,000 recipients: a second person's approval first
    blasts.launch(alert_id)  # the first 1,000 of a chunk of 10,000: the whole list
    assert dispatch.dispatch(alert_id) == 8  # 125 each: under the largest, spread eight ways
    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 100)
    queued.clear()
    assert dispatch.dispatch(alert_id) == 10  # capped at 100 each
    sizes = [rows_between(alert_id, *args[1:]) for name, args in queued if name == "alerts.tasks.send_batch"]
    assert sizes == [100] * 10


def rows_between(alert_id: int, first: int, last: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).where(
        Delivery.alert_id == alert_id, Delivery.id.between(first, last)))
