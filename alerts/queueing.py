"""Enqueue after commit: the one policy for handing work to Celery.

Work is queued by task name once the database transaction that made it necessary has
committed (a worker never looks for a row that is not there yet), and never if it rolls
back. When the broker cannot be reached, `on_broker_down` runs (on its own connection: the
transaction is over) so that something else picks the work up later: the sweep, a retry.
Publishing never raises into its caller: a view answers as usual while Redis is down.
Domain code never imports the task module; names are the contract with the workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from .extensions import db

log = logging.getLogger(__name__)
_PENDING = "alerts.after_commit"


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
    for task_name, args, fallback in session.info.pop(_PENDING, ()):
        publish(task_name, *args, on_broker_down=fallback)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
