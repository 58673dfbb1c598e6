"""Whole-list counts (subscribers by status, those on the list), cached until `subscribers` changes.

Counting a million rows costs 150 ms or more, and the dashboard and the subscriber list show
these figures on every load. A figure is cached in Redis under a generation number, and a
transaction of this app's engine (web, workers, CLI) that wrote to `subscribers` bumps the
generation at its commit and again when its connection goes back to the pool, after the
commit: a figure counted before a write is never read after it. A TTL bounds what a write
made outside the app (psql) can leave stale.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import redis
import sqlalchemy as sa
from sqlalchemy.pool import ConnectionPoolEntry

from . import redis_conn
from .extensions import db
from .models import Subscriber, SubscriberStatus

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)
_T = TypeVar("_T")

TTL_SECONDS = 120
_DIRTY = "alerts_subscribers_written"
_COMMITTED = "alerts_subscribers_committed"
_WRITES = re.compile(r"^\s*(?:insert\s+into|update|delete\s+from)\s+\"?subscribers\"?[\s(]", re.IGNORECASE)
_clients: dict[str, redis.Redis] = {}


def _client(url: str) -> redis.Redis:
    found = _clients.get(url)
    if found is None:
        found = _clients[url] = redis_conn.client(url)
    return found


def _prefix(engine: sa.Engine) -> str:
    """Keys per database: two lists (or test runs) sharing one Redis never read each other's figures."""
    name = engine.url.render_as_string(hide_password=True)
    return f"alerts:listcounts:{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def install(app: Flask) -> None:
    """Bump the generation after every transaction of this app's engine that wrote to subscribers."""
    url = app.config["REDIS_URL"]
    with app.app_context():
        engine = db.engine
    prefix = app.extensions["listcounts"] = _prefix(engine)

    def mark(conn: sa.Connection, _cursor: object, statement: str, _parameters: object, _context: object,
             _executemany: bool) -> None:
        if _WRITES.match(statement):
            conn.info[_DIRTY] = True

    def committing(conn: sa.Connection) -> None:
        # before the commit (a reader may still count the old rows, so again at checkin)
        if conn.info.pop(_DIRTY, False):
            conn.info[_COMMITTED] = True
            invalidate(url, prefix)

    def returned(_dbapi_connection: object, record: ConnectionPoolEntry | None) -> None:
        # checkin comes after the commit (or rollback) that ended the connection's transaction
        if record is not None and (record.info.pop(_COMMITTED, False) | record.info.pop(_DIRTY, False)):
            invalidate(url, prefix)

    sa.event.listen(engine, "after_cursor_execute", mark)
    sa.event.listen(engine, "commit", committing)
    sa.event.listen(engine.pool, "checkin", returned)


def invalidate(url: str, prefix: str) -> None:
    """Every cached figure is forgotten (a new generation); logged, not raised, if Redis is away."""
    try:
        _client(url).incr(f"{prefix}:generation")
    except redis.RedisError:
        log.warning("could not invalidate the cached subscriber counts", exc_info=True)


def _cached(name: str, compute: Callable[[], _T]) -> _T:
    """`compute()` as of this generation, computed once per generation and TTL."""
    from flask import current_app

    client = _client(current_app.config["REDIS_URL"])
    prefix = current_app.extensions["listcounts"]
    try:
        generation = int(client.get(f"{prefix}:generation") or 0)  # type: ignore[arg-type]  # redis-py types a sync reply as maybe Awaitable
        key = f"{prefix}:{name}:{generation}"
        found = client.get(key)
    except redis.RedisError:
        log.warning("cached subscriber counts unavailable; counting", exc_info=True)
        return compute()
    if found is not None:
        return json.loads(found)  # type: ignore[arg-type]  # redis-py types a sync reply as maybe Awaitable
    value = compute()
    try:
        client.set(key, json.dumps(value), ex=TTL_SECONDS)
    except redis.RedisError:
        log.warning("could not cache the subscriber counts", exc_info=True)
    return value


def _count_by_status() -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Subscriber.status, sa.func.count()).group_by(Subscriber.status)
    ).all()
    by = dict(rows)
    counts = {s.value: by.get(s.value, 0) for s in SubscriberStatus}
    counts["all"] = sum(by.values())
    return counts


def by_status() -> dict[str, int]:
    """Subscribers per status, and "all"; exact as of the last write to the list."""
    return _cached("status", _count_by_status)


def _count_on_list() -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Subscriber).where(
            Subscriber.confirmed_at.is_not(None),
            sa.or_(Subscriber.unsubscribed_at.is_(None),
                   Subscriber.unsubscribed_at < Subscriber.confirmed_at))
    ) or 0


def on_list() -> int:
    """Rows counted in the list-size chart now: confirmed once, and not unsubscribed since."""
    return _cached("on_list", _count_on_list)
