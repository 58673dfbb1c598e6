"""Outcomes of a batch, committed from a thread of their own every few milliseconds."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .. import suppressions, webhooks
from ..extensions import any_of, in_param
from ..models import Alert, AlertState, Delivery, DeliveryStatus, utcnow
from ..webhooks import outbox
from .state import RUNNING

log = logging.getLogger(__name__)

# How often the claim's lease is renewed: leases are tens of seconds (BLAST_STUCK_SECONDS), so
# once a second is plenty; renewing at every flush rewrote every unsent row of the batch
# twenty times a second, most of the database's work during a blast.
HEARTBEAT_SECONDS = 1.0

# A flush the database refused is tried again after this long, doubling up to the most.
RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 2.0


@dataclass
class BatchResult:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    requeued: int = 0
    throttled: int = 0  # throttle answers (tried again, no attempt spent)
    stopped: str | None = None  # why the batch stopped early, if it did
    retry_after: float | None = None  # no relay to send to: seconds until the first may be tried

    @property
    def needs_retry(self) -> bool:
        return self.requeued > 0 and self.stopped not in ("paused", "cancelled", "lost-claim")


class Recorder:
    """Commits a batch's outcomes from a thread of its own, every few milliseconds.

    The send loop only appends to lists, so database writes stay a few per second per
    batch, and an SMTP server that stalls on one message cannot hold earlier 250s
    unrecorded: the window between a server's 250 and its commit is one flush interval.
    The same flush reads the alert's state (pause, cancel) and, once a second, renews the
    claim's lease.
    When the database is away, the send loop is stopped and the outcomes are kept: `flush`
    tries again, reconnecting with backoff, until the lease runs out (`lease` seconds after
    its last renewal, when another worker may take the rows back), so a database restart
    shorter than the lease costs no 250 and no second copy.
    Engine internal: it commits, on its own connection.
    """

    def __init__(self, engine: sa.Engine, alert_id: int, claim: str, interval: float,
                 first: int, last: int, lease: float = 30.0):
        self.engine = engine
        self.alert_id = alert_id
        self.claim = claim
        self.first, self.last = first, last
        self.interval = interval
        self.lease = lease
        self.result = BatchResult()
        self.stop_reason: str | None = None
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # the thread and the final flush never overlap
        self._sent: list[int] = []
        self._marks: list[tuple[list[int], dict]] = []
        self._suppress: list[tuple[str, str, str]] = []
        self._done = threading.Event()
        self._beat_at = time.monotonic()  # the claim itself set claimed_at
        self._conn: sa.Connection | None = None
        self._thread = threading.Thread(target=self._run, name=f"recorder-{claim[:8]}", daemon=True)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()
        try:
            self.flush()
        finally:
            self._disconnect()

    def _connection(self) -> sa.Connection:
        """The batch's flushes share one connection: taken from the pool (and pinged) once,
        not twenty times a second; after a failed flush the next one takes a fresh one. On
        PostgreSQL it autocommits, so that a flush of 250s alone is one statement and one
        round trip (`_Statements.one_trip`); the pool resets it when it goes back."""
        if self._conn is None:
            conn = self.engine.connect()
            if _statements(conn.dialect.name).one_trip is not None:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def sent(self, delivery_id: int) -> None:
        with self._lock:
            self._sent.append(delivery_id)

    def mark(self, ids: list[int], status: DeliveryStatus, error: str | None, *,
             attempt: bool = False) -> None:
        if not ids:
            return
        values: dict = {"status": status, "error": error}
        if status == DeliveryStatus.QUEUED:
            values["claim_id"] = None
        if attempt:
            values["attempts"] = Delivery.attempts + 1
        with self._lock:
            self._marks.append((list(ids), values))
        key = {DeliveryStatus.FAILED: "failed", DeliveryStatus.SKIPPED: "skipped",
               DeliveryStatus.QUEUED: "requeued"}[status]
        setattr(self.result, key, getattr(self.result, key) + len(ids))

    def suppress(self, email: str, reason: str, detail: str) -> None:
        with self._lock:
            self._suppress.append((email, reason, detail))

    def release(self, ids: list[int], why: str) -> None:
        """Unsent rows go back to the queue, or are skipped if the alert was cancelled."""
        if self.stop_reason == "cancelled":
            self.mark(ids, DeliveryStatus.SKIPPED, "cancelled")
        else:
            self.mark(ids, DeliveryStatus.QUEUED, why)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                with self._flushing:
                    self._flush()
            except Exception as exc:  # the database is away: the send loop stops at its next check
                log.warning("alert %s: recording outcomes failed (%s); sending stops, the "
                            "outcomes are kept", self.alert_id, exc,
                            extra={"alert_id": self.alert_id, "claim": self.claim})
                self.stop_reason = self.stop_reason or "database-error"
                return  # the batch's own flushes try again until the lease ends

    def flush(self) -> None:
        """Write what is waiting; while the database is away, try again until the lease ends."""
        delay = RETRY_FIRST_SECONDS
        failures = 0
        with self._flushing:
            while True:
                try:
                    self._flush()
                except Exception as exc:
                    failures += 1
                    # The rows' lease was last renewed at _beat_at; past its end they may be
                    # another worker's (the claim in every statement keeps a late write harmless).
                    left = self._beat_at + self.lease - time.monotonic()
                    if left <= 0:
                        log.error("alert %s: outcomes could not be recorded within the lease "
                                  "(%s tries): %s", self.alert_id, failures, exc,
                                  extra={"alert_id": self.alert_id, "claim": self.claim})
                        raise
                    if failures == 1:
                        log.warning("alert %s: database unavailable (%s); outcomes kept, "
                                    "trying again for up to %.0f s", self.alert_id, exc, left,
                                    extra={"alert_id": self.alert_id, "claim": self.claim})
                    time.sleep(min(delay, left))
                    delay = min(2 * delay, RETRY_MAX_SECONDS)
                    continue
                if failures:
                    log.info("alert %s: outcomes recorded after %s failed tries", self.alert_id,
                             failures, extra={"alert_id": self.alert_id, "claim": self.claim})
                return

    def _flush(self) -> None:
        with self._lock:
            sent, self._sent = self._sent, []
            marks, self._marks = self._marks, []
            suppress, self._suppress = self._suppress, []
        try:
            state = self._write(sent, marks, suppress)
        except Exception:
            # Nothing was written: keep it all for the next flush, so a 250 is never forgotten.
            with self._lock:
                self._sent[:0], self._marks[:0], self._suppress[:0] = sent, marks, suppress
            raise
        self.result.sent += len(sent)
        if state == AlertState.CANCELLED:
            self.stop_reason = "cancelled"
        elif state not in RUNNING and self.stop_reason is None:
            self.stop_reason = "paused"

    def _write(self, sent: list[int], marks: list, suppress: list) -> str | None:
        """One transaction: outcomes, suppressions, the lease when due; returns the alert's state."""
        now = utcnow()
        try:
            return self._write_on(self._connection(), now, sent, marks, suppress)
        except Exception:
            self._disconnect()
            raise

    def _write_on(self, conn: sa.Connection, now: datetime, sent: list[int], marks: list,
                  suppress: list) -> str | None:
        built = _statements(conn.dialect.name)
        # The id range lets the database find the batch's rows by primary key.
        mine = {"first": self.first, "last": self.last, "claim": self.claim}
        beat = time.monotonic()
        beat_due = beat - self._beat_at >= HEARTBEAT_SECONDS
        if built.one_trip is not None and not marks and not suppress and not beat_due:
            # Most flushes: the 250s and the alert's state, one statement (atomic alone).
            done, state = conn.execute(
                built.one_trip, {**mine, "ids": sent, "now": now, "alert": self.alert_id}).one()
            if done != len(sent):
                self.stop_reason = "lost-claim"
            return state
        with _transaction(conn):
            if sent:
                res = conn.execute(built.sent, {**mine, "ids": sent, "now": now})
                if res.rowcount != len(sent):
                    self.stop_reason = "lost-claim"
            for ids, values in marks:
                conn.execute(sa.update(Delivery).where(any_of(Delivery.id, ids, conn), built.mine)
                             .values(**values), mine)
            for email, reason, detail in suppress:
                suppressions.add(email, reason, detail, conn=conn)
                if reason == "hard-bounce":  # refused at RCPT: sent by the sweep (no session here)
                    outbox.emit(webhooks.BOUNCE_HARD, {"subscriber_id": None, "email": email, "status": None,
                                                       "alert_id": self.alert_id, "via": "smtp",
                                                       "detail": detail[:200]}, conn=conn)
            if beat_due:
                conn.execute(built.beat, {**mine, "now": now})
                self._beat_at = beat
            return conn.scalar(built.state, {"alert": self.alert_id})


@contextlib.contextmanager
def _transaction(conn: sa.Connection) -> Iterator[None]:
    """One transaction on the recorder's connection: said out loud where it autocommits."""
    if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        with conn.begin():
            yield
        return
    conn.exec_driver_sql("BEGIN")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            conn.exec_driver_sql("ROLLBACK")
        raise
    conn.exec_driver_sql("COMMIT")


class _Statements:
    """The recorder's statements, built once per database: at twenty flushes a second per
    batch, building and cache-keying them each time cost more CPU than running them."""

    def __init__(self, dialect: str):
        deliveries, alerts = Delivery.__table__, Alert.__table__
        c = deliveries.c
        self.mine = sa.and_(c.id.between(sa.bindparam("first"), sa.bindparam("last")),
                            c.claim_id == sa.bindparam("claim"))
        self.sent = (sa.update(deliveries).where(in_param(c.id, "ids", dialect), self.mine)
                     .values(status=DeliveryStatus.SENT, sent_at=sa.bindparam("now"), error=None))
        self.beat = (sa.update(deliveries).where(self.mine, c.status == DeliveryStatus.SENDING)
                     .values(claimed_at=sa.bindparam("now")))
        # ("alert", not "alert_id": in an UPDATE a parameter named after a column sets it)
        self.state = sa.select(alerts.c.state).where(alerts.c.id == sa.bindparam("alert"))
        # PostgreSQL: the 250s and the state in one statement, where a transaction of its
        # own took four round trips (BEGIN, UPDATE, SELECT, COMMIT), each costing the worker
        # more CPU than the database's work.
        self.one_trip = None
        if dialect == "postgresql":
            done = self.sent.returning(c.id).cte("done")
            self.one_trip = sa.select(
                sa.select(sa.func.count()).select_from(done).scalar_subquery(),
                self.state.scalar_subquery())


_statements = functools.cache(_Statements)
