"""Sending one batch: claim its rows, build and send each message once, hand outcomes to the recorder."""

from __future__ import annotations

import logging
import smtplib
import uuid

import sqlalchemy as sa
from flask import current_app

from .. import suppressions
from ..extensions import db
from ..mail import smtp
from ..mail.signed_ids import envelope_sender, return_path
from ..models import (
    Alert,
    AlertState,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    email_hash,
    utcnow,
)
from ..subscribers.subscriptions import InvalidEmail, normalize_email
from .content import MessageFactory
from .recorder import BatchResult, Recorder
from .state import BlastError, finish_if_done

log = logging.getLogger(__name__)


def _claim(alert_id: int, first: int, last: int) -> str | None:
    """Take the range's queued rows in one UPDATE; commits (the claim must be visible to all)."""
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
    return claim if res.rowcount else None


def _alert_state(alert_id: int) -> str | None:
    return db.session.scalar(sa.select(Alert.state).where(Alert.id == alert_id))


def send_batch(alert_id: int, first: int, last: int) -> BatchResult:
    """Claim the queued rows in [first, last], send each one once, record every outcome.

    Engine internal: commits its claim, and its recorder commits outcomes as they come.
    """
    cfg = current_app.config
    if _alert_state(alert_id) != AlertState.SENDING:
        return BatchResult(stopped="not-sending")
    claim = _claim(alert_id, first, last)
    if claim is None:
        finish_if_done(alert_id)
        return BatchResult()
    rows = db.session.execute(
        sa.select(Delivery.id, Delivery.subscriber_id, Delivery.attempts, Subscriber.email,
                  Subscriber.status, Subscriber.token_key, Delivery.variant)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id.between(first, last), Delivery.claim_id == claim)
        .order_by(Delivery.id)
    ).all()
    alert = db.session.get(Alert, alert_id)
    factory = MessageFactory.for_alert(alert)
    factory.prepare(rows)  # A/B variants and partial signers, one query per batch
    suppressed = suppressions.suppressed_hashes(r.email for r in rows if r.email)
    db.session.commit()  # no transaction stays open while the batch sends

    recorder = Recorder(db.engine, alert_id, claim, cfg["BLAST_FLUSH_MS"] / 1000, first, last)
    with recorder:
        todo = []
        for row in rows:
            if row.email is None or row.status != SubscriberStatus.CONFIRMED:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "not subscribed")
            elif email_hash(row.email) in suppressed:
                recorder.mark([row.id], DeliveryStatus.SKIPPED, "suppressed")
            else:
                todo.append(row)
        done = _send_rows(recorder, factory, todo, cfg)
        recorder.flush()  # the state as of now decides between requeue and skip
        recorder.release([r.id for r in todo[done:]], recorder.result.stopped or "requeued")
    result = recorder.result
    result.stopped = result.stopped or recorder.stop_reason
    if result.stopped == "lost-claim":
        log.error("alert %s: claim %s was taken over; batch stopped", alert_id, claim,
                  extra={"alert_id": alert_id, "claim": claim})
    finish_if_done(alert_id)
    return result


def _send_rows(recorder: Recorder, factory: MessageFactory, todo: list, cfg) -> int:
    """Send over one connection; returns how many rows have an outcome (the rest go back)."""
    if not todo:
        return 0
    try:
        conn = smtp.connect(cfg["SMTP_URL"], cfg["SMTP_TIMEOUT"])
    except (OSError, smtplib.SMTPException) as exc:
        recorder.result.stopped = "smtp-unavailable"
        log.warning("alert %s: SMTP unavailable (%s)", recorder.alert_id, exc,
                    extra={"alert_id": recorder.alert_id})
        return 0
    max_attempts = cfg["BLAST_MAX_ATTEMPTS"]
    i = 0
    try:
        while i < len(todo) and recorder.stop_reason is None:
            row = todo[i]
            data = factory.build(row.id, row.subscriber_id, row.email, token_key=row.token_key)
            try:
                smtp.send_message(conn, return_path("d", row.id), row.email, data)
            except smtplib.SMTPException as exc:
                refusal = smtp.refusal(exc)
                if refusal.connection:
                    raise
                _recipient_error(recorder, row, refusal, max_attempts)
            else:
                recorder.sent(row.id)
            i += 1
    except (OSError, smtplib.SMTPException) as exc:
        # The connection died before this row's 250: it goes back with the rest.
        recorder.result.stopped = "smtp-disconnected"
        log.warning("alert %s: SMTP failed mid-batch (%s); %d rows requeued",
                    recorder.alert_id, exc, len(todo) - i,
                    extra={"alert_id": recorder.alert_id, "requeued": len(todo) - i})
    finally:
        try:
            conn.quit()
        except (OSError, smtplib.SMTPException):
            conn.close()
    return i


def _recipient_error(rec: Recorder, row, refusal: smtp.Refusal, max_attempts: int) -> None:
    """5xx is final (and, at RCPT, a hard bounce that suppresses); 4xx is tried again later."""
    detail = refusal.detail
    log.info("delivery %s refused: %s", row.id, detail,
             extra={"alert_id": rec.alert_id, "delivery_id": row.id, "smtp_code": refusal.code})
    if refusal.permanent:
        rec.mark([row.id], DeliveryStatus.FAILED, detail, attempt=True)
        if refusal.hard_bounce:
            rec.suppress(row.email, "hard-bounce", detail)
    elif row.attempts + 1 >= max_attempts:
        rec.mark([row.id], DeliveryStatus.FAILED, f"gave up after {max_attempts} tries: {detail}",
                 attempt=True)
    else:
        rec.mark([row.id], DeliveryStatus.QUEUED, detail, attempt=True)


def send_test(alert_id: int, to: str) -> None:
    """One copy to a staff address, through the same builder, signer and relay as a blast."""
    cfg = current_app.config
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise BlastError(f"there is no alert {alert_id}")
    try:
        # One plain address: "me@org.org, victim@x.org" would pass a suppression check on
        # the whole string while smtplib mailed the first address in it.
        to = normalize_email(to)
    except InvalidEmail as exc:
        raise BlastError(f"send a test to one email address ({exc})") from exc
    if suppressions.is_suppressed(to):
        raise BlastError(f"{to} is on the suppression list")
    data = MessageFactory.for_alert(alert).build(None, None, to, subject_prefix="[TEST] ")
    smtp.send_one(cfg["SMTP_URL"], envelope_sender(cfg), to, data, cfg["SMTP_TIMEOUT"])
