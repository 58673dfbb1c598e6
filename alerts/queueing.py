"""Enqueue after commit: the one policy for handing work to Celery.

Work is queued by task name once the database transaction that made it necessary has
committed (a worker never looks for a row that is not there yet), and never if it rolls
back. When the broker cannot be reached, `on_broker_down` runs (on its own connection: the
transaction is over) so that something else picks the work up later: the sweep, a retry.
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

Fallback = Callable[[], None] | None


def after_commit(task_name: str, *args, on_broker_down: Fallback = None) -> None:
    """Queue `task_name(*args)` when the current session commits; dropped if it rolls back."""
    db.session.info.setdefault(_PENDING, []).append((task_name, args, on_broker_down))


def publish(task_name: str, *args, on_broker_down: Fallback = None) -> bool:
    """Queue now (for callers with no transaction of their own); False if the broker is away."""
    try:
        _send(task_name, args)
    except Exception:
        log.exception("could not queue %s%r", task_name, args,
                      extra={"task": task_name})
        if on_broker_down is not None:
            on_broker_down()
        return False
    return True


def _send(task_name: str, args: tuple) -> None:
    current_app.extensions["celery"].send_task(task_name, args=args)


@event.listens_for(Session, "after_commit")
def _publish_pending(session: Session) -> None:
    for task_name, args, fallback in session.info.pop(_PENDING, ()):
        publish(task_name, *args, on_broker_down=fallback)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)
