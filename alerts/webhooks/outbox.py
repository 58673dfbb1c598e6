"""The outbox: one message row per endpoint that wants an event, written in the event's transaction.

`emit` is called by the domain code where each event happens (the caller commits, as for
everything else there); the delivery task is queued after the commit. When no endpoint wants
the type (most installs, most of the time) it costs a dictionary lookup: the set of wanted
types is read at most once every CACHE_SECONDS per process, and at once after this process
changes an endpoint. An endpoint added elsewhere gets events from every process within that time.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from .. import queueing, tasknames
from ..extensions import db
from ..models import WebhookEndpoint, WebhookMessage, WebhookState, utcnow

CACHE_SECONDS = 5.0
TASK_CHUNK = 50  # messages one delivery task sends, one after another (one endpoint's)


class _Wanted:
    types: frozenset[str] = frozenset()
    read_at = -1e9


def forget() -> None:
    """This process changed an endpoint: read the wanted types again at the next event."""
    _Wanted.read_at = -1e9


def wanted(conn: sa.Connection | None = None) -> frozenset[str]:
    """The event types some enabled endpoint asked for (cached per process for CACHE_SECONDS)."""
    now = time.monotonic()
    if now - _Wanted.read_at > CACHE_SECONDS:
        executor = conn if conn is not None else db.session
        rows = executor.scalars(sa.select(WebhookEndpoint.event_types).where(_live())).all()
        _Wanted.types = frozenset(t for row in rows for t in row.split())
        _Wanted.read_at = now
    return _Wanted.types


def _live() -> sa.ColumnElement[bool]:
    return sa.and_(WebhookEndpoint.enabled.is_(True), WebhookEndpoint.removed_at.is_(None))


def _wants(event_type: str) -> sa.ColumnElement[bool]:
    return (" " + WebhookEndpoint.event_types + " ").like(f"% {event_type} %")


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def body(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The payload exactly as it is signed and sent: `{"type", "timestamp", "data"}`."""
    return json.dumps({"type": event_type, "timestamp": at.isoformat(), "data": data},
                      default=_json_default, separators=(",", ":"), ensure_ascii=False)


def _new_msg_id() -> str:
    return "msg_" + secrets.token_hex(12)


def emit(event_type: str, data: dict[str, Any], *, conn: sa.Connection | None = None) -> int:
    """Record one event for every enabled endpoint that wants it; the caller commits.

    One INSERT ... SELECT from the endpoints table, so an endpoint removed meanwhile gets nothing.
    `conn` writes on a Connection of its own (the blast recorder's): no task is queued then,
    the sweep sends the rows within WEBHOOK_SWEEP_SECONDS. Returns how many messages were written.
    """
    if event_type not in wanted(conn):
        return 0
    now = utcnow()
    params = {"prefix": _new_msg_id() + "_", "event_type": event_type, "payload": body(event_type, data, now),
              "now": now, "queued_at": None if conn is not None else now, "state": WebhookState.PENDING,
              "pattern": f"% {event_type} %"}
    insert = _emit_statement()
    if conn is not None:
        return len(conn.execute(insert, params).all())
    rows = db.session.execute(insert, params).all()
    _queue_after_commit([(row.endpoint_id, row.id) for row in rows])
    return len(rows)


@functools.cache
def _emit_statement() -> sa.Insert:
    """INSERT ... SELECT from the endpoints that want the type: built once (bound parameters
    only), so each event reuses the compiled statement."""
    E, M = WebhookEndpoint, WebhookMessage
    when = E.created_at.type
    chosen = sa.select(
        sa.bindparam("prefix", type_=sa.String) + sa.cast(E.id, sa.String), E.id,
        sa.bindparam("event_type", type_=sa.String), sa.bindparam("payload", type_=sa.Text),
        sa.bindparam("now", type_=when), sa.bindparam("now", type_=when),
        sa.bindparam("queued_at", type_=when), sa.literal(0), sa.bindparam("state", type_=sa.String),
    ).where(_live(), (" " + E.event_types + " ").like(sa.bindparam("pattern", type_=sa.String)))
    table = M.__table__  # Core, not the ORM's bulk INSERT (which would read the parameters as rows)
    names = ["msg_id", "endpoint_id", "event_type", "payload", "created_at", "next_attempt_at", "queued_at",
             "attempts", "state"]
    return sa.insert(table).from_select(names, chosen).returning(table.c.id, table.c.endpoint_id)


def emit_many(event_type: str, items: Sequence[dict[str, Any]]) -> int:
    """Many events of one type at once (an import's thousands): one executemany; the caller commits."""
    if not items or event_type not in wanted():
        return 0
    # FOR SHARE on PostgreSQL: an endpoint cannot be deleted under the rows that name it.
    endpoint_ids = list(db.session.scalars(
        sa.select(WebhookEndpoint.id).where(_live(), _wants(event_type)).with_for_update(read=True)
    ))
    if not endpoint_ids:
        return 0
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for data in items:
        payload = body(event_type, data, now)
        prefix = _new_msg_id() + "_"
        rows.extend({"msg_id": f"{prefix}{eid}", "endpoint_id": eid, "event_type": event_type,
                     "payload": payload, "created_at": now, "next_attempt_at": now, "queued_at": now,
                     "attempts": 0, "state": WebhookState.PENDING} for eid in endpoint_ids)
    written = db.session.execute(
        sa.insert(WebhookMessage).returning(WebhookMessage.id, WebhookMessage.endpoint_id), rows
    ).all()
    _queue_after_commit([(row.endpoint_id, row.id) for row in written])
    return len(written)


ERASED_PAYLOAD = '{"redacted":"the subscriber was erased"}'


def scrub_subscriber(email: str) -> int:
    """An erased subscriber's address leaves the outbox: payloads quoting it are replaced, and
    those not yet sent are not sent; the caller commits. Returns how many were scrubbed."""
    quoted = json.dumps(email, ensure_ascii=False)  # as it appears inside a payload
    M = WebhookMessage
    like = "%" + quoted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    hit = M.payload.like(like, escape="\\")
    failed = db.session.execute(
        sa.update(M).where(hit, M.state == WebhookState.PENDING)
        .values(state=WebhookState.FAILED, last_error="subscriber erased", payload=ERASED_PAYLOAD)
    )
    rest = db.session.execute(sa.update(M).where(hit).values(payload=ERASED_PAYLOAD))
    return int(getattr(failed, "rowcount", 0) or 0) + int(getattr(rest, "rowcount", 0) or 0)


def for_endpoint(endpoint_id: int, event_type: str, data: dict[str, Any]) -> WebhookMessage:
    """One message to one endpoint whatever it asked for (the staff's test event); the caller commits."""
    now = utcnow()
    message = WebhookMessage(msg_id=f"{_new_msg_id()}_{endpoint_id}", endpoint_id=endpoint_id,
                             event_type=event_type, payload=body(event_type, data, now), created_at=now,
                             next_attempt_at=now, queued_at=now, attempts=0, state=WebhookState.PENDING)
    db.session.add(message)
    db.session.flush()
    _queue_after_commit([(endpoint_id, message.id)])
    return message


def _queue_after_commit(pairs: list[tuple[int, int]]) -> None:
    """One delivery task per endpoint and chunk; if the broker is away the sweep finds the rows."""
    for ids in chunks(pairs):
        queueing.after_commit(tasknames.DELIVER_WEBHOOKS, ids)


def chunks(pairs: list[tuple[int, int]]) -> list[list[int]]:
    """Message ids grouped by endpoint, in order, at most TASK_CHUNK to a task."""
    by_endpoint: dict[int, list[int]] = {}
    for endpoint_id, message_id in pairs:
        by_endpoint.setdefault(endpoint_id, []).append(message_id)
    out: list[list[int]] = []
    for ids in by_endpoint.values():
        ids.sort()
        out.extend(ids[i:i + TASK_CHUNK] for i in range(0, len(ids), TASK_CHUNK))
    return out
