"""What a batch's send loop asks of the database, and nothing more (`BatchStore`).

The loop in `sending` holds no SQL: it claims its rows, loads them and finishes the blast
through a store, and hands every outcome to the store's recorder. `SqlBatchStore` is the
store the workers use; a test can run the loop against one held in memory.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, Self, cast

import sqlalchemy as sa
from flask import current_app

from .. import suppressions
from ..extensions import db
from ..models import Alert, Delivery, DeliveryStatus, Subscriber, email_hash, utcnow
from . import personal
from .content import FactoriesByLanguage
from .recorder import BatchResult, Recorder
from .state import RUNNING, finish_if_done


class Recipient(Protocol):
    """A claimed delivery and its subscriber (email and status are None once they are gone)."""

    @property
    def id(self) -> int: ...
    @property
    def subscriber_id(self) -> int | None: ...
    @property
    def attempts(self) -> int: ...
    @property
    def email(self) -> str | None: ...
    @property
    def status(self) -> str | None: ...
    @property
    def token_key(self) -> str | None: ...
    @property
    def variant(self) -> str | None: ...
    @property
    def language(self) -> str | None: ...


class Messages(Protocol):
    """Each recipient's message: made, then signed (`content.MessageFactory`)."""

    def parts_row(self, row: Recipient) -> tuple[list, bytes]: ...
    def sign(self, parts: tuple[list, bytes]) -> bytes: ...


class Outcomes(Protocol):
    """Where the loop hands each row's outcome, and learns of a pause or cancel (`recorder.Recorder`)."""

    alert_id: int
    result: BatchResult
    stop_reason: str | None

    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...
    def sent(self, delivery_id: int) -> None: ...
    def mark(self, ids: list[int], status: DeliveryStatus, error: str | None, *,
             attempt: bool = False) -> None: ...
    def suppress(self, email: str, reason: str, detail: str) -> None: ...
    def release(self, ids: list[int], why: str) -> None: ...
    def flush(self) -> None: ...


@dataclass
class Batch:
    """A claimed batch as the loop sends it."""

    rows: Sequence[Recipient]  # in delivery order
    messages: Messages
    suppressed: set[str]  # the rows' addresses that are on the suppression list


class BatchStore(Protocol):
    def sending(self, alert_id: int) -> bool:
        """Whether the alert is being sent (not paused, cancelled or finished)."""
        ...

    def claim(self, alert_id: int, first: int, last: int) -> str | None:
        """Take the range's queued rows; the claim's id, or None when none was queued."""
        ...

    def load(self, alert_id: int, first: int, last: int, claim: str) -> Batch:
        """The claimed rows, their messages and their suppressions (no transaction left open)."""
        ...

    def outcomes(self, alert_id: int, claim: str, first: int, last: int) -> Outcomes:
        """The recorder the batch's outcomes go to."""
        ...

    def finish_if_done(self, alert_id: int) -> None:
        """End the blast if no row is left to send."""
        ...


class SqlBatchStore:
    """The batch's rows in the database; claim and load commit, the recorder commits outcomes."""

    def sending(self, alert_id: int) -> bool:
        return db.session.scalar(sa.select(Alert.state).where(Alert.id == alert_id)) in RUNNING

    def claim(self, alert_id: int, first: int, last: int) -> str | None:
        """One UPDATE; commits (the claim must be visible to all)."""
        claim = uuid.uuid4().hex
        res = db.session.execute(
            sa.update(Delivery)
            .where(
                Delivery.alert_id == alert_id,
                Delivery.id >= first,
                Delivery.id <= last,
                Delivery.status == DeliveryStatus.QUEUED,
            )
            .values(status=DeliveryStatus.SENDING, claim_id=claim, claimed_at=utcnow())
        )
        db.session.commit()
        return claim if cast(sa.CursorResult, res).rowcount else None

    def load(self, alert_id: int, first: int, last: int, claim: str) -> Batch:
        factory = FactoriesByLanguage.for_alert(db.session.get_one(Alert, alert_id))
        rows = db.session.execute(
            sa.select(Delivery.id, Delivery.subscriber_id, Delivery.attempts, Subscriber.email,
                      Subscriber.status, Subscriber.token_key, Delivery.variant, Subscriber.language,
                      *personal.columns(factory.tokens))  # the names an alert greets by, if any
            .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.id.between(first, last), Delivery.claim_id == claim)
            .order_by(Delivery.id)
        ).all()
        factory.prepare(rows)  # A/B variants, partial signers (and custom fields greeted by), a query each
        emails = [r.email for r in rows if r.email]
        hashes = suppressions.suppressed_hashes(emails)
        db.session.commit()  # no transaction stays open while the batch sends
        return Batch(rows, factory, {e for e in emails if email_hash(e) in hashes})

    def outcomes(self, alert_id: int, claim: str, first: int, last: int) -> Recorder:
        cfg = current_app.config
        return Recorder(db.engine, alert_id, claim, cfg["BLAST_FLUSH_MS"] / 1000, first, last,
                        lease=cfg["BLAST_STUCK_SECONDS"])

    def finish_if_done(self, alert_id: int) -> None:
        finish_if_done(alert_id)
