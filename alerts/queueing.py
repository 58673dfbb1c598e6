"""Enqueue after commit: the one policy for handing work to Celery.

Work is queued by task name once the database transaction that made it necessary has
committed (a worker never looks for a row that is not there yet), and never if it rolls
back. When the broker cannot be reached, `on_broker_down` runs (on its own connection: the
transaction is over) so that something else picks the work up later: the sweep, a retry.
Publishing never raises into its caller: a view answers as usual while Redis is down.
Domain code never imports the task module; names are the contract with the workers.

A hot path whose work is already a durable row (a signup attempt) uses a *light queue*
instead: after the commit one pipelined round trip pushes the row's id onto a Redis list
(`LPUSH`, about a tenth of a Celery publish's CPU) and raises the list's "awake" flag; only
when the flag was down is the list's drain task published, so under load one task drains a
batch of many. The row is the record: an id pushed while Redis is away, or taken by a drainer
that died, is found by the sweep, and applying a row twice is impossible (it is deleted as it
is read).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event
from sqlalchemy.orm import Session

from . import redis_conn
from .extensions import db

log = logging.getLogger(__name__)
_PENDING = "alerts.after_commit"
_PUSHES = "alerts.after_commit_push"


class _Broker:
    """Whether this process's last publish failed. While it did, each publish makes one
    connection attempt (a millisecond when Redis refuses, at most the connect timeout when it
    does not answer) instead of kombu's retries (0.6 s), so an outage does not slow every
    signup down; the first publish that gets through ends it."""

    away = False


_broker = _Broker()

Fallback = Callable[[], None] | None


def after_commit(task_name: str, *args: object, on_broker_down: Fallback = None) -> None:
    """Queue `task_name(*args)` when the current session commits; dropped if it rolls back."""
    db.session.info.setdefault(_PENDING, []).append((task_name, args, on_broker_down))


def publish(task_name: str, *args: object, on_broker_down: Fallback = None) -> bool:
    """Queue now (for callers with no transaction of their own); False if the broker is away."""
    try:
        _send(task_name, args)
    except Exception:
        if _broker.away:  # (the outage's first failure was logged with its traceback)
            log.warning("could not queue %s%r: the broker is still away", task_name, args,
                        extra={"task": task_name})
        else:
            log.exception("could not queue %s%r", task_name, args, extra={"task": task_name})
        _broker.away = True
        if on_broker_down is not None:
            on_broker_down()
        return False
    if _broker.away:
        log.warning("the broker answers again", extra={"task": task_name})
        _broker.away = False
    return True


def _send(task_name: str, args: tuple) -> None:
    celery = current_app.extensions["celery"]
    if not _broker.away:
        celery.send_task(task_name, args=args)
        return
    with celery.connection_for_write() as connection:
        connection.ensure_connection(max_retries=0)  # one attempt, no sleeping between retries
        celery.send_task(task_name, args=args, connection=connection, retry=False)


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    pushes = session.info.pop(_PUSHES, None)
    if pushes:
        for (name, wake), items in pushes.items():
            push(name, items, wake=wake)
    for task_name, args, fallback in session.info.pop(_PENDING, ()):
        publish(task_name, *args, on_broker_down=fallback)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_PUSHES, None)


# -- light queues -------------------------------------------------------------------------------

# A drainer refreshes its list's flag with each batch it takes; one that died holds it at most
# this long (the sweep drains the list meanwhile).
AWAKE_SECONDS = 30
# While Redis is away a process tries a push at most this often; the pushes in between are
# skipped at once (their rows wait for the sweep), so an outage does not slow each request.
RETRY_AWAY_SECONDS = 1.0


class _Light:
    """Whether this process's last push failed, and when it may try again."""

    away = False
    next_try = 0.0


_light = _Light()


def push_after_commit(name: str, item: int, *, wake: str) -> None:
    """Push `item` (a committed row's id) onto light queue `name` when the session commits, waking
    task `wake` to drain it; dropped if the session rolls back. The row must be what the sweep
    finds if the push never happens."""
    pushes = db.session.info.setdefault(_PUSHES, {})
    pushes.setdefault((name, wake), []).append(item)


def list_key(name: str) -> str:
    """Named after the Celery queue, so deployments and test runs sharing a Redis stay apart."""
    return f"{current_app.config['CELERY_TASK_QUEUE']}.{name}"


def _awake_key(name: str) -> str:
    return f"{list_key(name)}:awake"


def light_client() -> redis.Redis:
    """This process's pooled connection for light queues: one attempt per command (a stale
    pooled connection is retried once on a new one), short timeouts."""
    found = current_app.extensions.get("alerts.light_redis")
    if found is None:
        found = light_client_for(current_app.config["REDIS_URL"])
        current_app.extensions["alerts.light_redis"] = found
    return found


def light_client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=redis_conn.LIMITER_TIMEOUT_SECONDS,
                                socket_connect_timeout=redis_conn.CONNECT_TIMEOUT_SECONDS,
                                retry=Retry(NoBackoff(), 1))


def push(name: str, items: list[int], *, wake: str) -> bool:
    """LPUSH `items` and wake the drainer if none is awake; False (logged) if Redis is away."""
    now = time.monotonic()
    if _light.away and now < _light.next_try:
        return False
    try:
        pipe = light_client().pipeline(transaction=False)
        pipe.lpush(list_key(name), *items)
        pipe.set(_awake_key(name), "1", nx=True, ex=AWAKE_SECONDS)
        _length, woke = pipe.execute()
    except redis.RedisError as exc:
        if not _light.away:
            log.error("could not queue %s %r: Redis is away; the sweep will find them (%s)", name, items, exc,
                      extra={"queue": name})
        _light.away, _light.next_try = True, time.monotonic() + RETRY_AWAY_SECONDS
        return False
    if _light.away:
        log.warning("Redis answers again: light queue %s", name, extra={"queue": name})
        _light.away = False
    if woke and not publish(wake):
        _sleep(name)  # (the next push tries to wake a drainer again; the sweep drains meanwhile)
    return True


def take(name: str, limit: int, *, drainer: bool = True) -> list[int]:
    """Up to `limit` of the oldest items of light queue `name`, removed from it, oldest first; a
    `drainer`'s flag is refreshed (the sweep's taking leaves it to expire). An item taken is the
    taker's: if it dies, the sweep finds the row."""
    key = list_key(name)
    pipe = light_client().pipeline(transaction=True)
    pipe.lrange(key, -limit, -1)
    pipe.ltrim(key, 0, -limit - 1)
    if drainer:
        pipe.set(_awake_key(name), "1", ex=AWAKE_SECONDS)
    raw = pipe.execute()[0]
    return [int(item) for item in reversed(raw)]


def rest(name: str, *, wake: str) -> None:
    """A drainer stops: lower the flag; if items came in since its last take and no one raised the
    flag again, wake another drainer for them (no push is left waiting for a wake-up)."""
    _sleep(name)
    client = light_client()
    if client.llen(list_key(name)) and client.set(_awake_key(name), "1", nx=True, ex=AWAKE_SECONDS) \
            and not publish(wake):
        _sleep(name)


def clear(name: str) -> None:
    """Empty light queue `name` and lower its flag (tests, and an operator starting afresh)."""
    light_client().delete(list_key(name), _awake_key(name))


def _sleep(name: str) -> None:
    try:
        light_client().delete(_awake_key(name))
    except redis.RedisError:
        log.warning("could not lower light queue %s's flag; it expires by itself", name)
