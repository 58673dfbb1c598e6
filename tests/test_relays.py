"""Real relays that push back: paced, adaptive, several relays, and back soon after a crash.

Real worker processes, a real Redis of the test's own, and aiosmtpd relays on loopback
that throttle at a fixed rate and a connection cap (alerts/testing/mailcatcher.py RelayHandler).
"""

from __future__ import annotations

import collections
import time

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.mail.smtp import free_port
from alerts.models import Delivery, Subscriber
from alerts.testing.mailcatcher import MailCatcher, RelayHandler
from tests.helpers import add_confirmed, blasts, make_alert, wait_for_state

pytestmark = pytest.mark.slow


def received(*sinks) -> collections.Counter:
    return collections.Counter(r for s in sinks for m in s.messages for r in m.rcpt_tos)


def message_ids(*sinks) -> dict[str, set[str]]:
    out: dict[str, set[str]] = collections.defaultdict(set)
    for sink in sinks:
        for m in sink.messages:
            out[m.rcpt_tos[0]].add(m.message["Message-ID"])
    return out


def attempts_spent(alert_id: int) -> int:
    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Delivery.attempts), 0))
                             .where(Delivery.alert_id == alert_id))


@pytest.fixture
def relays():
    started = []

    def start(**kwargs) -> MailCatcher:
        sink = MailCatcher(handler=RelayHandler(**kwargs)).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


@pytest.mark.parametrize("reply", [
    "454 Throttling failure: Maximum sending rate exceeded",  # Amazon SES
    "421 4.7.0 Too many messages, slow down",  # Mailgun, SendGrid, Postmark style
])
def test_throttling_relay_gets_everything_once_none_failed_near_its_ideal_time(
        app, ctx, workers, relays, reply):
    """Nothing configured: the engine finds the relay's pace from its answers alone."""
    rate, n = 20, 300
    relay = relays(rate=rate, max_connections=2, throttle_reply=reply)
    emails = add_confirmed(n)
    alert_id = make_alert()
    # Four connections' worth of workers against a cap of two: it must learn the cap too.
    workers.start(name="w1", concurrency=2, SMTP_URL=relay.url)
    workers.start(name="w2", concurrency=2, SMTP_URL=relay.url, beat=False)
    workers.launch(alert_id)
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent", status
    assert (status["sent"], status["failed"]) == (n, 0)
    counts = received(relay)
    assert set(counts) == set(emails) and max(counts.values()) == 1
    assert relay.handler.throttled > 0  # it did push back
    assert attempts_spent(alert_id) == 0  # and no throttle answer spent an attempt
    assert relay.handler.peak_connections <= 2
    times = sorted(m.at for m in relay.messages)
    took = (times[-1] - times[0]).total_seconds()
    ideal = n / rate
    print(f"throttled relay: {took:.1f} s for an ideal {ideal:.1f} s ({took / ideal:.2f}x), "
          f"{relay.handler.throttled} throttle answers, {relay.handler.refused_connections} refused")
    assert took <= 1.5 * ideal, f"{took:.1f} s for an ideal {ideal:.1f} s"


def test_configured_rate_and_connection_cap_are_kept_across_workers(app, ctx, workers, relays):
    """SMTP_MAX_RATE and SMTP_MAX_CONNECTIONS hold for all workers together: no push-back at all."""
    n = 200
    relay = relays(rate=40, max_connections=2)
    emails = add_confirmed(n)
    alert_id = make_alert()
    settings = {"SMTP_URL": relay.url, "SMTP_MAX_RATE": "30", "SMTP_MAX_CONNECTIONS": "2"}
    workers.start(name="w1", concurrency=2, **settings)
    workers.start(name="w2", concurrency=2, beat=False, **settings)
    workers.launch(alert_id)
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent" and status["sent"] == n, status
    assert set(received(relay)) == set(emails)
    assert relay.handler.refused_connections == 0
    assert relay.handler.peak_connections <= 2
    times = sorted(m.at for m in relay.messages)
    took = (times[-1] - times[0]).total_seconds()
    assert took >= (n - 5) / 30 * 0.9  # paced: no faster than 30 a second
    assert relay.handler.throttled <= 5


def test_two_relays_one_dies_mid_blast_everything_arrives_through_the_other(
        app, ctx, workers, relays):
    n = 600
    first, second = relays(), relays()
    # The first relay is slow (12 s for all of it), the second quick and so given most of the
    # blast: "40 in at the slow one" comes while rows are still unsent, even when this process
    # is starved of CPU for a while (checked below: a blast that ended first tests nothing).
    first.handler.data_reply = lambda rcpt: time.sleep(0.02)
    second.handler.data_reply = lambda rcpt: time.sleep(0.004)
    emails = add_confirmed(n)
    alert_id = make_alert()
    workers.start(name="w1", concurrency=2, SMTP_URL=f"{first.url},{second.url}")
    workers.launch(alert_id)
    deadline = time.monotonic() + 30
    while len(first.messages) < 40 and time.monotonic() < deadline:
        time.sleep(0.02)
    unsent_at_stop = n - len(first.messages) - len(second.messages)
    first.stop()  # mid-blast: its open connections drop, new ones are refused
    assert unsent_at_stop > 0, "the blast ended before the relay died: nothing was tested"
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent", status
    assert (status["sent"], status["failed"]) == (n, 0)
    counts = received(first, second)
    assert set(counts) == set(emails)
    # A message the dying relay took without its 250 reaching us is sent again: at most one
    # per open connection, with the same Message-ID.
    dupes = [e for e, c in counts.items() if c > 1]
    assert len(dupes) <= 2
    ids = message_ids(first, second)
    assert all(len(ids[e]) == 1 for e in dupes)
    assert len(second.messages) > 0 and len(first.messages) >= 40


def test_a_relay_that_is_down_is_skipped_and_its_share_goes_to_the_other(
        app, ctx, workers, relays):
    n = 300
    dead = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    alive = relays()
    add_confirmed(n)
    alert_id = make_alert()
    workers.start(name="w1", concurrency=2, SMTP_URL=f"{dead}?weight=5,{alive.url}")
    workers.launch(alert_id)
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent" and (status["sent"], status["failed"]) == (n, 0), status
    assert len(alive.messages) == n


def test_worker_sigkilled_with_default_settings_blast_finishes_within_two_minutes(
        app, ctx, smtp, workers):
    """Production's lease (30 s) and sweep (15 s): a dead worker's rows are back in under a minute."""
    n = 1500
    emails = add_confirmed(n)
    alert_id = make_alert()
    smtp.handler.data_reply = lambda rcpt: time.sleep(0.01)  # a blast that takes a while
    doomed = workers.start(name="doomed", concurrency=1, beat=False, engine_defaults=True)
    workers.start(name="survivor", concurrency=1, engine_defaults=True)
    workers.launch(alert_id)
    deadline = time.monotonic() + 60
    while len(smtp.messages) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    doomed.kill()
    killed = time.monotonic()
    db.session.rollback()
    assert blasts.counts(alert_id)["sending"] > 0  # the dead worker's claimed rows
    status = wait_for_state(alert_id, timeout=120)
    assert status["state"] == "sent", status
    print(f"SIGKILL with default settings: blast finished {time.monotonic() - killed:.1f} s after the kill")
    assert time.monotonic() - killed <= 120
    counts = received(smtp)
    assert set(counts) == set(emails) and status["sent"] == n and status["failed"] == 0
    # Resends only from the 250-to-commit window, same Message-ID: what the dead worker had
    # sent in one flush interval (at 10 ms or more a message), plus the one whose data the
    # sink took when the worker died.
    window = app.config["BLAST_FLUSH_MS"] // 10 + 1
    dupes = [e for e, c in counts.items() if c > 1]
    print(f"resent after the kill: {len(dupes)} (window: at most {window})")
    assert len(dupes) <= window
    ids = message_ids(smtp)
    assert all(len(ids[e]) == 1 for e in dupes)


def test_per_domain_limits_are_honoured_at_the_sink(app, ctx, workers, relays):
    """Yahoo at one connection and 20 messages a connection, Gmail at two; the rest unlimited."""
    domains = ("yahoo.com", "gmail.com", "example.org")
    emails = [f"kid{i:04d}@{domains[i % 3]}" for i in range(450)]
    db.session.execute(sa.insert(Subscriber), [{"email": e, "status": "confirmed"} for e in emails])
    db.session.commit()
    relay = relays()
    # Each batch sends its unlimited share first; a slow example.org keeps the four
    # processes' first batches on it at once, so an unlimited domain shows the overlap.
    relay.handler.data_reply = lambda rcpt: time.sleep(0.04 if rcpt[0].endswith("example.org") else 0.003)
    alert_id = make_alert()
    settings = {"SMTP_URL": relay.url, "BLAST_BATCH_SIZE": "30",
                "SMTP_DOMAIN_LIMITS": "yahoo.com=connections:1,per_connection:20; gmail.com=connections:2"}
    started = [workers.start(name="w1", concurrency=2, **settings),
               workers.start(name="w2", concurrency=2, beat=False, **settings)]
    for worker in started:
        worker.wait_ready()
    workers.launch(alert_id)
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent" and (status["sent"], status["failed"]) == (450, 0), status
    assert set(received(relay)) == set(emails)
    peak = relay.handler.peak_per_domain
    print(f"peak connections per domain: {dict(peak)}")
    assert peak["yahoo.com"] == 1
    assert peak["gmail.com"] <= 2
    assert peak["example.org"] > 2  # unlimited: the workers did overlap
    per_conn = [n for (conn, d), n in relay.handler.per_connection.items() if d == "yahoo.com"]
    assert max(per_conn) <= 20 and sum(per_conn) == 150


def _most_open(relay, seconds: float) -> tuple[int, float | None]:
    """The most sessions open at once over `seconds`, and when that many were first seen."""
    most, first_at = 0, None
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        now = relay.handler.open
        if now > most:
            most, first_at = now, time.monotonic() - start
        time.sleep(0.01)
    return most, first_at


def _until_full(relay, full: int, timeout: float) -> float | None:
    """Seconds until `full` sessions are open at once again (None: not within `timeout`)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if relay.handler.open >= full:
            return time.monotonic() - start
        time.sleep(0.01)
    return None


OUTAGE = 30  # seconds of "421 4.3.2 System shutting down" at connect


def test_a_relay_answering_a_bare_421_for_a_while_gets_all_its_connections_back(
        app, ctx, workers, relays):
    """A bare 421 at connect (the relay in maintenance, 30 s) is an outage, not a connection
    limit: once the relay greets again, the blast is back to as many connections as before
    within seconds (a 421 read as "too many connections" kept it at one for five minutes)."""
    n = 3000
    relay = relays()
    relay.handler.data_delay = 0.005  # each 250 takes a while: more connections, faster
    emails = add_confirmed(n)
    alert_id = make_alert()
    # Production's backoff between a batch's tries (5 s doubling): a batch that found the
    # relay skipped comes back when the relay may be tried again, not after its backoff.
    workers.start(name="w1", concurrency=4, SMTP_URL=relay.url, MAIL_RETRY_BACKOFF="5",
                  MAIL_RETRY_BACKOFF_MAX="600")
    workers.launch(alert_id)
    assert relay.handler.wait_for(400, timeout=60), "the blast never got going"
    full, _ = _most_open(relay, 1.5)
    assert full >= 3, f"only {full} connection(s) before the outage"
    relay.handler.connect_reply = lambda: "421 4.3.2 System shutting down"
    outage_ends = time.monotonic() + OUTAGE
    while time.monotonic() < outage_ends:
        time.sleep(0.05)
    assert relay.handler.refused_at_connect > 0
    during = len(relay.messages)
    relay.handler.connect_reply = None
    back_in = _until_full(relay, full, timeout=15)
    # The relay is skipped for at most ANSWERED_BREAKER_MAX (5 s) after its last refusal,
    # and a batch waits that long and up to a second more (here about 3 s; 9 s when the
    # batches slept their backoff out, a few minutes at one connection when the 421 was read
    # as "too many connections").
    assert back_in is not None and back_in < 7, (
        f"{full} connections before the outage; not again within 15 s of its end "
        f"(most since: {_most_open(relay, 1)[0]})")
    status = wait_for_state(alert_id, timeout=120)
    finished = time.monotonic() - outage_ends
    assert status["state"] == "sent" and status["sent"] == n, status
    counts = received(relay)
    assert set(counts) == set(emails) and max(counts.values()) == 1
    assert during < n
    print(f"\n{full} connections before a {OUTAGE} s bare 421; all back {back_in:.1f} s after it ended; "
          f"{n - during} messages left then, sent {finished:.1f} s after it ended")
