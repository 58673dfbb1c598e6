"""Real parts for every test: a database (SQLite or TEST_DATABASE_URL), Redis, SMTP, a worker, a server."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
import sqlalchemy.orm
from celery.contrib.testing.worker import start_worker
from flask_sqlalchemy.session import Session as FlaskSession
from werkzeug.serving import make_server

from alerts import create_app
from alerts.celery_app import bulk_queue
from alerts.extensions import db, limiter
from alerts.mail import pacing
from alerts.testing.mailcatcher import MailCatcher
from alerts.testing.schema import fresh_schema
from tests import tracking_helpers

RUN_ID = uuid.uuid4().hex[:8]
UNACKED = "unacked"  # kombu's Redis hash of messages a worker has taken but not acknowledged


def _redis_url(tmp_root: Path) -> str:
    url = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL")
    if url:
        return url
    from alerts.redis_conn import start_embedded

    return start_embedded(tmp_root / "redis")


def _database_url(tmp_root: Path) -> str:
    return os.environ.get("TEST_DATABASE_URL") or f"sqlite:///{tmp_root / 'test.db'}"


@pytest.fixture(scope="session")
def smtp() -> Iterator[MailCatcher]:
    catcher = MailCatcher().start()
    yield catcher
    catcher.stop()


@pytest.fixture(scope="session")
def app(tmp_path_factory, smtp):
    root = tmp_path_factory.mktemp("alerts")
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-key-1",
            "SECRET_KEYS": ["test-key-1"],
            "SQLALCHEMY_DATABASE_URI": _database_url(root),
            "REDIS_URL": _redis_url(root),
            "SMTP_URL": smtp.url,
            "BASE_URL": "https://alerts.example.org",
            "MAIL_FROM": "Action Alerts <alerts@example.org>",
            "ORG_NAME": "Kids Rights Test Org",
            "ORG_POSTAL_ADDRESS": "1 Test Street, Testville, NY 10001",
            "CELERY_TASK_QUEUE": f"test-{RUN_ID}",
            "RATELIMIT_KEY_PREFIX": f"test-{RUN_ID}",
            "MAIL_RETRY_BACKOFF": 1,
            "MAIL_RETRY_BACKOFF_MAX": 2,
            # The suite logs in with a password; tests/test_twofactor.py holds the default to account.
            "STAFF_REQUIRE_2FA": frozenset(),
        }
    )
    with app.app_context():
        fresh_schema()
    yield app
    from alerts.redis_conn import stop_embedded

    stop_embedded()


class _InFlight:
    """Tasks the session's worker is running: a test's tasks must not spill into the next test."""

    running = 0
    started = False
    lock = threading.Lock()
    events = 0  # tasks published by this process, started or ended: anything that could spill
    settled_at = -1  # `events` when the worker was last seen settled

    @classmethod
    def on_publish(cls, **_):
        with cls.lock:
            cls.events += 1

    @classmethod
    def on_start(cls, **_):
        with cls.lock:
            cls.running += 1
            cls.events += 1

    @classmethod
    def on_end(cls, **_):
        with cls.lock:
            cls.running -= 1
            cls.events += 1

    @classmethod
    def settle(cls, app, timeout: float = 15, *, held: bool = False) -> bool:
        """Wait until the worker has nothing queued and nothing running (only if it runs);
        with `held`, nothing taken off the queue but not started either (prefetched, or a
        retry waiting for its time). False if it is still busy after `timeout`.

        A test that queued nothing and ran nothing since the last settled look (most of them)
        finds it settled at once; otherwise three quiet looks in a row, since a task taken off
        the queue is not running yet for a moment, and a task may queue another."""
        if not cls.started:
            return True
        from alerts import redis_conn

        r = redis_conn.client(app.config["REDIS_URL"])
        queue = app.config["CELERY_TASK_QUEUE"]

        def busy() -> int:
            return (cls.running or r.llen(queue) or r.llen(bulk_queue(queue))
                    or (held and r.hlen(UNACKED)))

        if cls.events == cls.settled_at and not busy():
            return True
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            events = cls.events
            quiet = 0 if busy() else quiet + 1
            if quiet >= 3:
                cls.settled_at = events
                return True
            time.sleep(0.05)
        return False


class SessionWorker:
    """What the `celery_worker` fixture gives a test: a way to wait for the worker's work."""

    def __init__(self, app) -> None:
        self.app = app

    def wait_idle(self, timeout: float = 30) -> None:
        """Return once everything queued so far has run (and whatever it queued in turn):
        an email that was going to come has come."""
        assert _InFlight.settle(self.app, timeout, held=True), f"the worker was still busy after {timeout} s"


@pytest.fixture(scope="session")
def celery_worker(app):
    """A real Celery worker (threads) consuming from real Redis for the whole session."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    import alerts.tasks  # noqa: F401
    from alerts import redis_conn

    celery = app.extensions["celery"]
    # What earlier tests queued with no worker about names rows that are gone (and ids that
    # come round again): the worker starts on empty queues.
    queue = app.config["CELERY_TASK_QUEUE"]
    redis_conn.client(app.config["REDIS_URL"]).delete(queue, bulk_queue(queue), UNACKED,
                                                  f"{UNACKED}_index")
    task_prerun.connect(_InFlight.on_start, weak=False)
    task_postrun.connect(_InFlight.on_end, weak=False)
    before_task_publish.connect(_InFlight.on_publish, weak=False)
    with start_worker(celery, pool="threads", concurrency=4, perform_ping_check=False,
                      shutdown_timeout=30):
        _InFlight.started = True
        yield SessionWorker(app)
        _InFlight.started = False


# Tests that pay for the full clean (every table emptied and committed, the worker settled)
# instead of a rolled-back transaction: what they run commits on connections of its own (the
# session's worker, a live server's threads, processes), which a transaction of the test's
# never sees. Tests whose code opens its own connection otherwise (a blast's recorder thread,
# `db.engine.begin()`) say so with `@pytest.mark.commits`; a rolled-back test that opens one
# anyway fails, naming the marker.
FULL_CLEAN_FIXTURES = frozenset({"celery_worker", "live_server", "workers", "own_redis", "browser"})


def full_clean(item: pytest.Item) -> bool:
    """Whether `item` needs committed, emptied tables rather than a rolled-back transaction."""
    return (item.get_closest_marker("commits") is not None
            or item.get_closest_marker("slow") is not None
            or not FULL_CLEAN_FIXTURES.isdisjoint(item.fixturenames))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Rolled-back and pure tests first, full-clean ones after (as Django runs its TestCases
    before its TransactionTestCases): the session's worker starts with the first test that
    asks for it, so no worker thread is about while a test's rows are uncommitted."""
    items.sort(key=full_clean)


def _reset_shared_state(app, smtp: MailCatcher) -> None:
    """Fresh rate limits, relay paces, click queues and inbox: what Redis and SMTP keep."""
    limiter.reset()
    pacing.for_url(app.config["REDIS_URL"]).reset()  # no relay's pace or health carries over
    # The tables start empty, so alert ids come round again: no frozen links cached for an
    # earlier test's alert of the same id (the /r/ redirect would lead to its old server),
    # and no clicks queued by an earlier test.
    tracking_helpers.reset(app)
    # No signup ids left on their light queue by a test without a worker, nor its drainer's flag
    # (which would keep the next test's signups from waking the worker).
    from alerts import queueing
    from alerts.subscribers.confirmations import SIGNUPS

    queueing.clear(SIGNUPS)
    from alerts.subscribers import fields

    fields.forget()  # no signup form fields cached from another test's (rolled-back) definitions
    smtp.handler.clear()
    smtp.handler.connect_reply = None
    smtp.handler.rcpt_reply = None
    smtp.handler.data_reply = None
    smtp.handler.data_delay = 0.0


@pytest.fixture(autouse=True)
def _clean(request):
    """Every test that uses the app starts with empty tables, an empty inbox and fresh rate
    limits: in a transaction rolled back at its end, or (`full_clean`) with every table emptied
    once the session's worker has finished what the last test queued. Pure tests take no app."""
    names = request.fixturenames
    if "app" not in names:
        if "smtp" in names:
            smtp = request.getfixturevalue("smtp")
            smtp.handler.clear()
            smtp.handler.rcpt_reply = None
            smtp.handler.data_reply = None
        yield
        return
    app = request.getfixturevalue("app")
    smtp = request.getfixturevalue("smtp")
    _InFlight.settle(app)
    if not full_clean(request.node):
        with app.app_context():
            _reset_shared_state(app, smtp)
        with _rolled_back(app, request.node.nodeid):
            yield
        return
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            if table.name == "audit_events" and db.engine.dialect.name == "postgresql":
                # Append-only: its trigger refuses DELETE; the suite empties it the one other way.
                db.session.execute(sa.text("TRUNCATE audit_events"))
            else:
                db.session.execute(table.delete())
        db.session.commit()
        _reset_shared_state(app, smtp)
    yield
    with app.app_context():
        db.session.remove()


class _JoinedSession(FlaskSession):
    """Flask-SQLAlchemy's session on the test's connection (its own `get_bind` would return
    the engine, whatever the session is bound to)."""

    def get_bind(self, *args, **kwargs):
        return self.bind


class OwnConnection(AssertionError):
    """A rolled-back test's code took a connection of its own, which never sees the test's rows."""


@contextmanager
def _rolled_back(app, test: str) -> Iterator[None]:
    """Every session of this thread joins one outer transaction, rolled back at the end: the
    code's commits become savepoints (SQLAlchemy's recipe for test suites)."""
    with app.app_context():
        engine = db.engine
    conn = engine.connect()
    outer = conn.begin()
    if conn.dialect.name == "sqlite":
        # pysqlite begins a transaction only before a DML statement: without this BEGIN the
        # first SAVEPOINT would begin one, and its RELEASE (a session's commit) commit it.
        conn.exec_driver_sql("BEGIN")
    factory = sa.orm.sessionmaker(db=db, class_=_JoinedSession, query_cls=db.Query, bind=conn,
                                  join_transaction_mode="create_savepoint")
    registry = db.session.registry
    own_factory = registry.createfunc
    owner = threading.get_ident()
    registry.createfunc = lambda: factory() if threading.get_ident() == owner else own_factory()
    others: list[str] = []
    url = engine.url

    def connected(connection) -> None:
        # Any engine on the test's database: the app's own (`db.engine.begin()`, a thread's
        # session) or one made beside it.
        if connection.engine.url == url:
            others.append(threading.current_thread().name)
            raise OwnConnection(f"{test} took a database connection of its own (thread "
                                f"{threading.current_thread().name}): mark it @pytest.mark.commits")

    def released(connection, _name, _context) -> None:
        # A session's commit is a savepoint's release here: the engine's commit listeners
        # (the list counts' cache) run as on a real commit.
        engine.dispatch.commit(connection)

    sa.event.listen(sa.Engine, "engine_connect", connected)
    sa.event.listen(conn, "release_savepoint", released)
    try:
        yield
    finally:
        sa.event.remove(sa.Engine, "engine_connect", connected)
        with app.app_context():
            db.session.remove()
        registry.createfunc = own_factory
        outer.rollback()
        conn.close()
    if others:
        pytest.fail(f"{test} took a database connection of its own (thread {others[0]}): "
                    "mark it @pytest.mark.commits", pytrace=False)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


class LiveServer:
    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server(app):
    with LiveServer(app) as server:
        yield server


