"""More than one host: worker processes on two test hosts (network namespaces, tests/netns.py)
against one Redis, one database and the relays, all on the root side of a bridge.

What it proves, measured at the relay (the SMTP sink sees each client's address):
- workers on two hosts share the relay's rate cap and its connection cap;
- a host cut off mid-blast (its switch port down) loses nothing: its leased rows come back
  within the lease and the other host sends them;
- a relay per host: each host's workers send through their own, and the totals add up.

Needs root and `ip netns` (skipped, saying why, where that is not allowed). On PostgreSQL
the database is reached through a forwarder on the bridge (socat), since the test server
listens on loopback only; on SQLite the hosts share the database file through the
filesystem, which the namespaces share.
"""

from __future__ import annotations

import collections
import math
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import datetime

import pytest
import sqlalchemy as sa

from alerts.blasts.recorder import HEARTBEAT_SECONDS
from alerts.extensions import db
from alerts.models import Delivery, DeliveryStatus, Subscriber, utcnow
from alerts.testing.mailcatcher import MailCatcher, RelayHandler
from alerts.testing.ports import free_port, wait_port
from tests.helpers import add_confirmed, blasts, make_alert, wait_for_state
from tests.netns import Host, NetnsUnavailable, TestNetwork, unavailable
from tests.processes import RedisServer, WorkerProcess, send_task, worker_env

pytestmark = pytest.mark.slow

IN_CI = os.environ.get("CI") == "true"

N = 2000
RATE = 150  # messages a second, for every worker on every host together
CONNECTIONS = 3  # against four pool processes (two a host): they must share
LEASE = 10  # BLAST_STUCK_SECONDS here (production: 30)
SWEEP = 1  # SWEEP_INTERVAL_SECONDS here (production: 15)
IDLE_TIMEOUT = 5  # PostgreSQL's idle_in_transaction_session_timeout for the hosts' sessions


# A token is granted in Redis and its message reaches the sink later (signed, sent, read by
# the sink's own loop): a window at the sink covers up to this much more of the bucket's time.
JITTER = 0.2  # measured up to 0.13 s on a 2-core machine running all of it


def burst(rate: float) -> float:
    """The token bucket's burst (alerts/mail/pacing.py: a tenth of a second's worth)."""
    return max(1.0, rate / 10)


def allowed(rate: float, seconds: float) -> float:
    """The most a relay capped at `rate` may see in any `seconds`: the cap, its burst, jitter."""
    return rate * (seconds + JITTER) + burst(rate)


def peak(sink: MailCatcher, seconds: float = 1.0) -> int:
    """The most messages the sink accepted in any `seconds` (a sliding window)."""
    times = sorted(m.at.timestamp() for m in sink.messages)
    best = first = 0
    for i, t in enumerate(times):
        while t - times[first] >= seconds:
            first += 1
        best = max(best, i - first + 1)
    return best


def copies(*sinks: MailCatcher) -> collections.Counter:
    return collections.Counter(r for s in sinks for m in s.messages for r in m.rcpt_tos)


def by_host(*sinks: MailCatcher) -> collections.Counter:
    return collections.Counter(m.peer for s in sinks for m in s.messages)


@pytest.fixture
def net() -> Iterator[TestNetwork]:
    why = unavailable()
    if why and IN_CI and os.geteuid() == 0 and shutil.which("ip") is None:
        pytest.fail(f"CI runs as root: {why} (scripts/setup --test installs iproute2)")
    if why:
        pytest.skip(why)
    try:
        network = TestNetwork(hosts=2).create()
    except NetnsUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield network
    finally:
        network.remove()


@pytest.fixture
def root_redis(net, tmp_path) -> Iterator[RedisServer]:
    """The Redis every host shares, listening on the bridge."""
    server = RedisServer(tmp_path, host=net.root_ip).start()
    try:
        net.wait_reachable(server.port)
        yield server
    finally:
        server.stop()


@pytest.fixture
def database_url(app, net) -> Iterator[str]:
    """The test database as the hosts reach it: SQLite's file as it is; PostgreSQL through a
    forwarder on the bridge, with the idle-in-transaction timeout docs/operations.md asks for."""
    url = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        yield url.render_as_string(hide_password=False)
        return
    socat = shutil.which("socat")
    if socat is None:
        if IN_CI:
            pytest.fail("CI needs socat for the two-host test on PostgreSQL (scripts/setup installs it)")
        pytest.skip("no socat to forward PostgreSQL onto the bridge (apt-get install socat)")
    port = free_port(net.root_ip)
    forwarder = subprocess.Popen(
        [socat, f"TCP-LISTEN:{port},bind={net.root_ip},reuseaddr,fork",
         f"TCP:{url.host or '127.0.0.1'}:{url.port or 5432}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_port(net.root_ip, port, 10, forwarder)
        # A host cut off between a statement and its COMMIT leaves its transaction open on
        # the server (nothing tells PostgreSQL the client is gone), holding its rows' locks:
        # the sweep that returns them would wait for it.
        options = f"-c idle_in_transaction_session_timeout={IDLE_TIMEOUT}s"
        yield url.set(host=net.root_ip, port=port).update_query_dict({"options": options}) \
                 .render_as_string(hide_password=False)
    finally:
        os.killpg(forwarder.pid, 9)
        forwarder.wait(10)


@pytest.fixture
def sinks(net) -> Iterator:
    """Relays on the bridge that measure (and do not limit): rate, connections, who sent."""
    started: list[MailCatcher] = []

    def start() -> MailCatcher:
        sink = MailCatcher(host=net.root_ip, handler=RelayHandler()).start()
        started.append(sink)
        net.wait_reachable(sink.port)
        return sink

    try:
        yield start
    finally:
        for sink in started:
            sink.stop()


class Hosts:
    """Worker processes on the test hosts, on one private queue of the shared Redis."""

    def __init__(self, app, net: TestNetwork, redis: RedisServer, database_url: str, tmp_path):
        self.app, self.net, self.redis, self.database_url = app, net, redis, database_url
        self.tmp_path = tmp_path
        self.queue = f"hosts-{uuid.uuid4().hex[:8]}"
        self.started: dict[str, WorkerProcess] = {}

    def start(self, host: Host, smtp_url: str, *, beat: bool = False, **extra: str) -> WorkerProcess:
        env = worker_env(self.app, redis_url=self.redis.url, smtp_url=smtp_url, queue=self.queue,
                         DATABASE_URL=self.database_url, **extra)
        proc = WorkerProcess(env, self.tmp_path / f"host-{host.name}.log", beat=beat,
                             name=f"host-{host.name}", concurrency=2, wrap=host.wrap)
        self.started[host.name] = proc
        return proc

    def ready(self) -> None:
        for proc in self.started.values():
            proc.wait_ready()

    def launch(self, alert_id: int) -> int:
        total = blasts.start_blast(alert_id)
        db.session.commit()
        send_task(self.redis.url, self.queue, "alerts.tasks.dispatch_blast", alert_id)
        return total

    def stop(self) -> None:
        for proc in self.started.values():
            proc.kill()  # a host that was cut off would not stop cleanly
            proc.log.close()


@pytest.fixture
def hosts(app, net, root_redis, database_url, tmp_path) -> Iterator[Hosts]:
    pool = Hosts(app, net, root_redis, database_url, tmp_path)
    try:
        yield pool
    finally:
        pool.stop()


def _settings(**more: str) -> dict[str, str]:
    return {"SMTP_MAX_RATE": str(RATE), "SMTP_MAX_CONNECTIONS": str(CONNECTIONS),
            "BLAST_STUCK_SECONDS": str(LEASE), "SWEEP_INTERVAL_SECONDS": str(SWEEP),
            "SMTP_TIMEOUT": "10", **more}


def test_two_hosts_share_the_relays_rate_cap_and_connection_cap(app, ctx, net, hosts, sinks):
    """The caps live in Redis, so four processes on two hosts stay under them together."""
    relay = sinks()
    emails = add_confirmed(N)
    alert_id = make_alert()
    a, b = net.hosts
    hosts.start(a, relay.url, beat=True, **_settings())
    hosts.start(b, relay.url, **_settings())
    hosts.ready()
    hosts.launch(alert_id)
    status = wait_for_state(alert_id, timeout=120)
    assert status["state"] == "sent", status
    counts = copies(relay)
    assert set(counts) == set(emails) and max(counts.values()) == 1
    assert status["sent"] == N

    sent_by = by_host(relay)
    second, five = peak(relay), peak(relay, 5)
    times = sorted(m.at for m in relay.messages)
    took = (times[-1] - times[0]).total_seconds()
    print(f"\ntwo hosts, one relay: {N} in {took:.1f} s ({(N - 1) / took:.1f}/s) for a cap of "
          f"{RATE}/s (burst {burst(RATE):.0f}); busiest second {second}, busiest 5 s {five} "
          f"({five / 5:.1f}/s); connections at once {relay.handler.peak_connections} (cap "
          f"{CONNECTIONS}); host a sent {sent_by[a.ip]}, host b {sent_by[b.ip]}")
    assert set(sent_by) == {a.ip, b.ip}, sent_by  # both hosts sent, and no one else
    assert min(sent_by.values()) >= N // 10, sent_by
    assert relay.handler.peak_connections <= CONNECTIONS
    assert second <= allowed(RATE, 1), f"{second} in one second against a cap of {RATE}/s"
    assert five <= allowed(RATE, 5), f"{five} in five seconds against a cap of {RATE}/s"
    assert (N - 1) / took <= RATE * 1.02  # and no faster on average


def _unrenewed(rows: set[int], since: datetime) -> set[int]:
    """Which of these rows are still sending under a lease last renewed before `since`."""
    db.session.rollback()
    return set(db.session.scalars(sa.select(Delivery.id).where(
        Delivery.id.in_(rows), Delivery.status == DeliveryStatus.SENDING,
        Delivery.claimed_at < since)))


def test_a_host_cut_off_mid_blast_loses_nothing_and_its_rows_return_within_the_lease(
        app, ctx, net, hosts, sinks, database_url):
    """A host whose link dies holds its leased rows; the sweep on the other host takes them
    back once the lease (not renewed any more) runs out, and that host sends them."""
    relay = sinks()
    emails = add_confirmed(N)
    alert_id = make_alert()
    a, b = net.hosts
    hosts.start(a, relay.url, beat=True, **_settings())
    worker_b = hosts.start(b, relay.url, **_settings())
    hosts.ready()
    hosts.launch(alert_id)
    deadline = time.monotonic() + 60
    while by_host(relay)[b.ip] < 150 or len(relay.messages) < N // 4:
        assert time.monotonic() < deadline, f"the blast never got going: {by_host(relay)}"
        time.sleep(0.02)

    cut_at = utcnow()
    cut = time.monotonic()
    net.cut(b)
    if database_url.startswith("sqlite"):
        # The namespaces share the database file, which no second machine would: the link
        # alone cannot cut this host from its database, so it goes the whole way (as a
        # machine that lost power). On PostgreSQL the link alone cuts it.
        worker_b.kill()
    at_cut = len(relay.messages)
    assert at_cut < N - 200, "the blast was nearly over when the host was cut off"
    db.session.rollback()
    sending = set(db.session.scalars(sa.select(Delivery.id).where(
        Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.SENDING)))
    # Leases are renewed every heartbeat: after three, the rows still unrenewed are b's.
    time.sleep(3 * HEARTBEAT_SECONDS)
    stranded = _unrenewed(sending, cut_at)
    assert stranded, "the cut-off host held no rows: nothing was tested"
    while _unrenewed(stranded, cut_at):
        assert time.monotonic() - cut < LEASE + 30, "the cut-off host's rows never came back"
        time.sleep(0.1)
    returned = time.monotonic() - cut

    status = wait_for_state(alert_id, timeout=180)
    finished = time.monotonic() - cut
    assert status["state"] == "sent", status
    assert status["sent"] == N and status["failed"] == 0
    counts = copies(relay)
    missing = set(emails) - set(counts)
    twice = {e: n for e, n in counts.items() if n > 1}
    sent_by = by_host(relay)
    print(f"\nhost cut off after {at_cut} of {N} ({sent_by[b.ip]} from it): its {len(stranded)} "
          f"leased rows back after {returned:.1f} s (lease {LEASE} s, sweep every {SWEEP} s), "
          f"blast done {finished:.1f} s after the cut; copies missing/once/twice: "
          f"{len(missing)}/{N - len(missing) - len(twice)}/{len(twice)}")
    assert not missing, f"lost: {sorted(missing)[:5]}"
    # A 250 the cut host got but had not recorded yet is sent again by the other host: the
    # engine's documented window, one flush interval (BLAST_FLUSH_MS) of 250s, here allowed
    # twice over (the flush under way when the link went) plus one in flight a connection.
    # Measured: the copies sent twice were all accepted in the 40 ms before the cut.
    window = math.ceil(RATE * 2 * int(app.config["BLAST_FLUSH_MS"]) / 1000) + CONNECTIONS
    assert len(twice) <= window, f"{len(twice)} sent twice, e.g. {list(twice)[:5]}"
    # The lease, the sweep's interval, and (PostgreSQL, when the link went mid-transaction)
    # the wait for the server to end the cut host's open transaction on those rows.
    assert returned <= LEASE + 2 * SWEEP + IDLE_TIMEOUT + 2, f"rows came back after {returned:.1f} s"
    # The stranded rows went out from host a, after the cut.
    stranded_emails = set(db.session.scalars(
        sa.select(Subscriber.email).join(Delivery).where(Delivery.id.in_(stranded))))
    from_a = {r for m in relay.messages if m.peer == a.ip for r in m.rcpt_tos}
    assert stranded_emails <= from_a


def test_a_relay_per_host(app, ctx, net, hosts, sinks):
    """Hosts may each send through a relay of their own, each with its own cap, one blast."""
    relay_a, relay_b = sinks(), sinks()
    emails = add_confirmed(N)
    alert_id = make_alert()
    a, b = net.hosts
    per_relay = 100
    hosts.start(a, f"{relay_a.url}?max_rate={per_relay}", beat=True, **_settings())
    hosts.start(b, f"{relay_b.url}?max_rate={per_relay}", **_settings())
    hosts.ready()
    hosts.launch(alert_id)
    status = wait_for_state(alert_id, timeout=120)
    assert status["state"] == "sent" and status["sent"] == N, status
    counts = copies(relay_a, relay_b)
    assert set(counts) == set(emails) and max(counts.values()) == 1
    print(f"\na relay per host: relay a got {len(relay_a.messages)} (busiest second "
          f"{peak(relay_a)}), relay b {len(relay_b.messages)} (busiest second "
          f"{peak(relay_b)}), each capped at {per_relay}/s")
    assert set(by_host(relay_a)) == {a.ip} and set(by_host(relay_b)) == {b.ip}
    assert len(relay_a.messages) >= N // 10 and len(relay_b.messages) >= N // 10
    assert len(relay_a.messages) + len(relay_b.messages) == N
    for relay in (relay_a, relay_b):  # each relay's own cap, kept by its own host
        assert peak(relay) <= allowed(per_relay, 1)
        assert relay.handler.peak_connections <= CONNECTIONS
