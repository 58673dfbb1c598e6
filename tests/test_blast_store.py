"""The send loop against a store held in memory and a real SMTP catcher as the relay: the loop
asks nothing of the database but through its store (`blasts.store`)."""

from __future__ import annotations

import collections
from typing import NamedTuple

import pytest
import sqlalchemy as sa

from alerts.blasts import sending
from alerts.blasts.recorder import BatchResult
from alerts.blasts.store import Batch
from alerts.extensions import db
from alerts.models import DeliveryStatus, SubscriberStatus

ALERT_ID = 7


class Row(NamedTuple):
    id: int
    subscriber_id: int | None
    attempts: int
    email: str | None
    status: str | None
    token_key: str | None = None
    variant: str | None = None
    language: str | None = None


def _row(i: int, email: str | None = None, status: str | None = SubscriberStatus.CONFIRMED) -> Row:
    return Row(i, i, 0, email or f"reader{i}@example.org", status)


class Messages:
    def parts_row(self, row: Row) -> tuple[list, bytes]:
        return [row.email], f"delivery {row.id}".encode()

    def sign(self, parts: tuple[list, bytes]) -> bytes:
        (to,), body = parts
        return b"From: alerts@example.org\r\nTo: %s\r\nSubject: In memory\r\n\r\n%s\r\n" % (to.encode(), body)


class Outcomes:
    """The recorder's face, kept in memory: what the loop said, in the order it said it."""

    def __init__(self, pause_after: int | None = None):
        self.alert_id = ALERT_ID
        self.result = BatchResult()
        self.stop_reason: str | None = None
        self.pause_after = pause_after
        self.said: list[tuple] = []
        self._unflushed = 0

    def __enter__(self) -> Outcomes:
        self.said.append(("open",))
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.said.append(("close",))

    def sent(self, delivery_id: int) -> None:
        self.said.append(("sent", delivery_id))
        self._unflushed += 1
        if self.pause_after is not None and self.result.sent + self._unflushed >= self.pause_after:
            self.stop_reason = "paused"  # as a flush that read the alert's state would say

    def mark(self, ids: list[int], status: str, error: str | None, *, attempt: bool = False) -> None:
        if not ids:
            return
        self.said.append(("mark", tuple(ids), status, error, attempt))
        key = {DeliveryStatus.FAILED: "failed", DeliveryStatus.SKIPPED: "skipped",
               DeliveryStatus.QUEUED: "requeued"}[status]
        setattr(self.result, key, getattr(self.result, key) + len(ids))

    def suppress(self, email: str, reason: str, detail: str) -> None:
        self.said.append(("suppress", email, reason))

    def release(self, ids: list[int], why: str) -> None:
        self.said.append(("release", tuple(ids), why))
        self.mark(ids, DeliveryStatus.QUEUED, why)

    def flush(self) -> None:
        self.result.sent += self._unflushed
        self._unflushed = 0


class Store:
    def __init__(self, rows: list[Row], suppressed: set[str] = frozenset(), *, state_sending: bool = True,
                 outcomes: Outcomes | None = None):
        self.rows, self.suppressed, self.state_sending = rows, set(suppressed), state_sending
        self.recorder = outcomes or Outcomes()
        self.calls: list[str] = []

    def sending(self, alert_id: int) -> bool:
        self.calls.append("sending")
        return self.state_sending

    def claim(self, alert_id: int, first: int, last: int) -> str | None:
        self.calls.append("claim")
        return "claim-1" if self.rows else None

    def load(self, alert_id: int, first: int, last: int, claim: str) -> Batch:
        self.calls.append("load")
        return Batch(self.rows, Messages(), self.suppressed)

    def outcomes(self, alert_id: int, claim: str, first: int, last: int) -> Outcomes:
        self.calls.append("outcomes")
        return self.recorder

    def finish_if_done(self, alert_id: int) -> None:
        self.calls.append("finish_if_done")


@pytest.fixture
def no_sql(ctx):
    """Every statement the app's engine runs while the test does; the loop's own are none."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", record)


def test_the_loop_sends_skips_and_records_through_its_store_alone(app, smtp, no_sql, monkeypatch):
    replies = {"gone@example.org": "550 5.1.1 No such user", "later@example.org": "451 4.3.0 Try again later"}
    monkeypatch.setattr(smtp.handler, "rcpt_reply", lambda address: replies.get(address))
    rows = [_row(1), _row(2, status=SubscriberStatus.UNSUBSCRIBED), _row(3, "blocked@example.org"),
            _row(4, "gone@example.org"), _row(5), _row(6, "later@example.org"),
            Row(7, None, 0, None, None), _row(8)]  # 7: the subscriber was erased
    store = Store(rows, {"blocked@example.org"})

    result = sending.send_batch(ALERT_ID, 1, 8, store=store)

    assert no_sql == []
    assert store.calls == ["sending", "claim", "load", "outcomes", "finish_if_done"]
    arrived = smtp.handler.wait_for(3, timeout=10)
    assert collections.Counter(r for m in arrived for r in m.rcpt_tos) == {
        "reader1@example.org": 1, "reader5@example.org": 1, "reader8@example.org": 1}
    said = store.recorder.said
    assert said[0] == ("open",) and said[-1] == ("close",)
    assert [s[1] for s in said if s[0] == "sent"] == [1, 5, 8]
    marks = {s[1]: s[2:] for s in said if s[0] == "mark"}
    assert marks[(2,)] == (DeliveryStatus.SKIPPED, "not subscribed", False)
    assert marks[(7,)] == (DeliveryStatus.SKIPPED, "not subscribed", False)
    assert marks[(3,)] == (DeliveryStatus.SKIPPED, "suppressed", False)
    assert marks[(4,)][0] == DeliveryStatus.FAILED and "No such user" in marks[(4,)][1] and marks[(4,)][2]
    assert marks[(6,)][0] == DeliveryStatus.QUEUED and "Try again later" in marks[(6,)][1] and marks[(6,)][2]
    assert ("suppress", "gone@example.org", "hard-bounce") in said
    assert ("release", (), "requeued") in said  # nothing was left unsent
    assert (result.sent, result.failed, result.skipped, result.requeued, result.stopped) == (3, 1, 3, 1, None)


def test_a_pause_the_recorder_reads_stops_the_loop_and_the_rest_goes_back(app, smtp, no_sql):
    store = Store([_row(i) for i in range(1, 7)], outcomes=Outcomes(pause_after=2))

    result = sending.send_batch(ALERT_ID, 1, 6, store=store)

    assert no_sql == []
    assert [s[1] for s in store.recorder.said if s[0] == "sent"] == [1, 2]
    assert ("release", (3, 4, 5, 6), "requeued") in store.recorder.said
    assert (result.sent, result.requeued, result.stopped) == (2, 4, "paused")
    assert len(smtp.handler.wait_for(2, timeout=10)) == 2


def test_a_batch_of_an_alert_not_sending_claims_nothing(app, no_sql):
    store = Store([_row(1)], state_sending=False)
    assert sending.send_batch(ALERT_ID, 1, 1, store=store).stopped == "not-sending"
    assert store.calls == ["sending"]
    store = Store([])
    assert sending.send_batch(ALERT_ID, 1, 1, store=store) == BatchResult()
    assert store.calls == ["sending", "claim", "finish_if_done"]
    assert no_sql == []
