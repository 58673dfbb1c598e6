"""Real parts for every test: a database (SQLite or TEST_DATABASE_URL), Redis, SMTP, a worker, a server."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery.contrib.testing.worker import start_worker
from werkzeug.serving import make_server

from alerts import create_app
from alerts.celery_app import bulk_queue
from alerts.extensions import db, limiter
from alerts.mail import pacing
from alerts.testing.mailcatcher import MailCatcher
from alerts.testing.schema import fresh_schema
from tests import tracking_helpers

RUN_ID = uuid.uuid4().hex[:8]


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
    def settle(cls, app, timeout: float = 15) -> None:
        """Wait until the worker has nothing queued and nothing running (only if it runs).

        A test that queued nothing and ran nothing since the last settled look (most of them)
        finds it settled at once; otherwise three quiet looks in a row, since a task taken off
        the queue is not running yet for a moment, and a task may queue another."""
        if not cls.started:
            return
        from alerts import redis_conn

        r = redis_conn.client(app.config["REDIS_URL"])
        queue = app.config["CELERY_TASK_QUEUE"]

        def busy() -> int:
            return cls.running or r.llen(queue) or r.llen(bulk_queue(queue))

        if cls.events == cls.settled_at and not busy():
            return
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            events = cls.events
            quiet = 0 if busy() else quiet + 1
            if quiet >= 3:
                cls.settled_at = events
                return
            time.sleep(0.05)


@pytest.fixture(scope="session")
def celery_worker(app):
    """A real Celery worker (threads) consuming from real Redis for the whole session."""
    from celery.signals import before_task_publish, task_postrun, task_prerun

    import alerts.tasks  # noqa: F401

    celery = app.extensions["celery"]
    task_prerun.connect(_InFlight.on_start, weak=False)
    task_postrun.connect(_InFlight.on_end, weak=False)
    before_task_publish.connect(_InFlight.on_publish, weak=False)
    with start_worker(celery, pool="threads", concurrency=4, perform_ping_check=False,
                      shutdown_timeout=30):
        _InFlight.started = True
        yield
        _InFlight.started = False


@pytest.fixture(autouse=True)
def _clean(app, smtp):
    """Every test starts with empty tables, an empty inbox and fresh rate limits, once the
    session's worker has finished what the last test queued."""
    _InFlight.settle(app)
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        limiter.reset()
        pacing.for_url(app.config["REDIS_URL"]).reset()  # no relay's pace or health carries over
        # The tables start empty, so alert ids come round again: no frozen links cached for an
        # earlier test's alert of the same id (the /r/ redirect would lead to its old server),
        # and no clicks queued by an earlier test.
        tracking_helpers.reset(app)
    smtp.handler.clear()
    smtp.handler.connect_reply = None
    smtp.handler.rcpt_reply = None
    smtp.handler.data_reply = None
    smtp.handler.data_delay = 0.0
    yield
    with app.app_context():
        db.session.remove()


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


