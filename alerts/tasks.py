"""Celery tasks: thin wrappers that commit, retry and log around plain functions.

Each is registered under its name in `tasknames`, the contract with the workers and with
`queueing` (domain code queues by name and never imports this module).
"""

from __future__ import annotations

import contextlib
import logging
import random
import smtplib
import time
from typing import Any

import redis
import sqlalchemy as sa
from celery import Task, shared_task
from flask import current_app

from . import invitations, journeys, tasknames  # noqa: F401 - invitations: its email kind, registered on import
from .actions import letters, signing  # signing: its email kind, registered on import
from .blasts import abtest, dispatch, recovery, scheduling, sending
from .bounces import processing
from .extensions import DATABASE_DOWN, database_down_reason, db
from .mail import smtp
from .subscribers import confirmations, emails, subscriptions, welcome
from .tracking import drain, retention
from .webhooks import delivery as webhook_delivery
from .words import plural

log = logging.getLogger(__name__)


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped; base and cap come from config."""
    cfg = current_app.config
    cap = min(cfg["MAIL_RETRY_BACKOFF_MAX"], cfg["MAIL_RETRY_BACKOFF"] * (2**retries))
    return random.uniform(cap / 2, cap)


def send_email_now(task: Task, kind: emails.Kind, args: tuple[Any, ...]) -> bool:
    """The one retry policy of every kind of email (`subscribers.emails`).

    Sent: True; nothing to send: False. A permanent refusal is final (for a subscriber's
    email, a 5xx at RCPT is a hard bounce that suppresses the address, as for an alert); a
    passing failure runs the kind's `on_retry` hook and is tried again with growing delays,
    up to MAIL_MAX_RETRIES, after which the task fails (and is logged as given up).
    """
    extra = {"email_kind": kind.name, "task_args": list(args)}
    if kind.subscriber:
        extra["subscriber_id"] = args[0]
    try:
        return kind.send(*args)
    except (OSError, smtplib.SMTPException) as exc:
        if smtp.refusal(exc).permanent:
            log.warning("%s email %r refused: %s", kind.name, args, exc, extra=extra)
            if kind.subscriber:
                processing.confirmation_refused(args[0], exc)
                db.session.commit()
            return False
        if kind.on_retry is not None:
            kind.on_retry(*args)
        if task.request.retries >= current_app.config["MAIL_MAX_RETRIES"]:
            log.error("%s email %r given up: %s", kind.name, args, exc, extra=extra)
            raise
        delay = backoff_seconds(task.request.retries)
        log.info("%s email %r retried in %.1fs: %s", kind.name, args, delay, exc, extra=extra)
        raise task.retry(exc=exc, countdown=delay) from exc


def _email_task(kind: emails.Kind) -> Task:
    """Each kind's task, under the name it registered (queued tasks of any version still run)."""

    @shared_task(bind=True, name=kind.task, max_retries=None)
    def send_email(self: Task, *args: Any) -> bool:
        return send_email_now(self, kind, args)

    send_email.__doc__ = f"Send one {kind.name} email (`subscribers.emails`)."
    return send_email


EMAIL_TASKS = {name: _email_task(kind) for name, kind in emails.KINDS.items()}
send_confirmation = EMAIL_TASKS["confirmation"]
send_welcome = EMAIL_TASKS[welcome.NAME]
send_signature_confirmation = EMAIL_TASKS["signature_confirmation"]


@shared_task(name=tasknames.HANDLE_SIGNUP)
def handle_signup(attempt_id: int) -> int | None:
    """A signup as received by `POST /subscribe`: decided here, so the answer could not tell."""
    subscriber_id = confirmations.handle_signup(attempt_id)
    db.session.commit()
    return subscriber_id


# A drainer hands over to a fresh task after this long, so a stream of signups that never lets
# the list empty is not one task running into the time limit.
DRAIN_SECONDS = 60


@shared_task(name=tasknames.DRAIN_SIGNUPS)
def drain_signups() -> dict:
    """Apply the signups queued on their light queue, a batch at a time, each in its own commit."""
    result = _drain_signups(time.monotonic() + DRAIN_SECONDS)
    confirmations.rest_signups()
    return result


def _drain_signups(until: float, *, drainer: bool = True) -> dict:
    applied = failed = 0
    while time.monotonic() < until:
        batch = confirmations.take_signups(drainer=drainer)
        if not batch:
            break
        for attempt_id in batch:
            try:
                confirmations.handle_signup(attempt_id)
                db.session.commit()
                applied += 1
            except Exception:  # the row stays: the sweep applies it later
                db.session.rollback()
                failed += 1
                log.exception("signup attempt %s not applied; the sweep will", attempt_id,
                              extra={"attempt_id": attempt_id})
    return {"applied": applied, "failed": failed}


@shared_task(name=tasknames.DISPATCH_BLAST)
def dispatch_blast(alert_id: int) -> int:
    return dispatch.dispatch(alert_id)


@shared_task(name=tasknames.FILL_BLAST)
def fill_blast(alert_id: int) -> int:
    return dispatch.fill(alert_id)


@shared_task(bind=True, name=tasknames.SEND_BATCH, max_retries=None)
def send_batch(self, alert_id: int, first: int, last: int) -> dict:
    try:
        result = sending.send_batch(alert_id, first, last)
    except sa.exc.OperationalError as exc:
        # The database is away (a restart): what the batch sent is recorded or its rows come
        # back with the lease, and a batch that had not claimed yet claims nothing twice, so
        # it is tried again soon instead of waiting for the sweep to notice the stall.
        with contextlib.suppress(Exception):
            db.session.rollback()
        if self.request.retries >= current_app.config["MAIL_MAX_RETRIES"]:
            raise
        log.warning("alert %s batch %s-%s: database unavailable (%s); tried again shortly",
                    alert_id, first, last, str(exc).splitlines()[0],
                    extra={"alert_id": alert_id, "first_delivery_id": first,
                           "last_delivery_id": last})
        raise self.retry(countdown=backoff_seconds(self.request.retries)) from exc
    log.info("alert %s batch %s-%s: %s", alert_id, first, last, result,
             extra={"alert_id": alert_id, "first_delivery_id": first, "last_delivery_id": last,
                    "sent": result.sent, "failed": result.failed, "skipped": result.skipped,
                    "requeued": result.requeued, "throttled": result.throttled,
                    "stopped": result.stopped})
    # Rows that went back to the queue (4xx, SMTP down) are tried again later; past the
    # last retry the sweep's re-dispatch still finds them, so nothing is lost.
    if result.needs_retry and self.request.retries < current_app.config["MAIL_MAX_RETRIES"]:
        delay = backoff_seconds(self.request.retries)
        if result.retry_after is not None:
            # Every relay is skipped for now: try again just after the first may be tried
            # (a relay back from maintenance is sent to within seconds, not after the backoff).
            delay = result.retry_after + random.uniform(0.1, 1.0)
        raise self.retry(countdown=delay)
    return {"sent": result.sent, "failed": result.failed, "requeued": result.requeued}


@shared_task(name=tasknames.START_SCHEDULED)
def start_scheduled() -> list[int]:
    started = scheduling.start_due()
    for alert_id in started:
        log.info("alert %s: scheduled send started", alert_id, extra={"alert_id": alert_id})
    return started


@shared_task(name=tasknames.SWEEP)
def sweep() -> dict:
    """Beat's recovery pass; with the database away it says so in one line and waits for the next."""
    try:
        return _sweep()
    except DATABASE_DOWN as exc:
        db.session.rollback()
        log.warning("sweep skipped: the database is not answering (%s)", database_down_reason(exc))
        return {"database": "down"}


def _sweep() -> dict:
    result = recovery.sweep()
    try:  # a drainer's wake-up lost (its publish failed, its worker died): the list is drained here
        drained = _drain_signups(time.monotonic() + 10, drainer=False)["applied"]
    except redis.RedisError as exc:
        log.warning("sweep: the signups' light queue is not reachable (%s)", exc)
        db.session.rollback()
        drained = 0
    result["signups_drained"] = drained
    signups = subscriptions.stale_attempts(current_app.config["SIGNUP_STALE_SECONDS"])
    for attempt_id in signups:
        confirmations.handle_signup(attempt_id)
        db.session.commit()
    result["signups_applied"] = len(signups)
    unsent = subscriptions.claim_unsent_confirmations()
    for subscriber_id in unsent:
        confirmations.queue(subscriber_id)
    unqueued_signatures = signing.claim_unqueued_confirmations()
    for signature_id in unqueued_signatures:
        signing.queue_confirmation(signature_id)
    unwelcomed = welcome.unsent()
    for subscriber_id in unwelcomed:
        welcome.queue(subscriber_id)
    db.session.commit()
    result["confirmations_queued"] = len(unsent)
    result["signature_confirmations_queued"] = len(unqueued_signatures)
    result["welcomes_queued"] = len(unwelcomed)
    words = sweep_words(result)
    if result["returned"] or result["redispatched"]:
        log.warning("sweep: %s", words, extra=result)  # a worker died or stalled mid-blast
    elif words:
        log.info("sweep: %s", words, extra=result)  # routine catching up (the worker was busy or down)
    return result


def sweep_words(result: dict) -> str:
    """What a sweep did, as a person reads it ("returned 3 deliveries to the queue, …"); "" if nothing."""
    said = [
        (result.get("returned"), "returned {} to the queue", "delivery", "deliveries"),
        (result.get("redispatched"), "restarted {} that had stopped moving", "blast", None),
        (result.get("signups_drained"), "applied {} left on their queue", "signup", None),
        (result.get("signups_applied"), "applied {} not yet handled", "signup", None),
        (result.get("confirmations_queued"), "queued {} not yet sent", "confirmation email", None),
        (result.get("welcomes_queued"), "queued {} not yet sent", "welcome email", None),
        (result.get("signature_confirmations_queued"), "queued {} not yet sent",
         "signature confirmation email", None),
    ]
    words = [text.format(plural(len(n) if isinstance(n, list) else n, one, many))
             for n, text, one, many in said if n]
    return ", ".join(words)


@shared_task(name=tasknames.DECIDE_AB_TESTS)
def decide_ab_tests() -> dict:
    """Beat: A/B tests' circuit breakers, and winners once their wait is over (commits per test)."""
    done = abtest.decide_due()
    if done:
        log.info("A/B tests: %s", done, extra={"ab_tests": done})
    return done


@shared_task(name=tasknames.QUEUE_EMAILS)
def queue_emails(kind_name: str, ids: list[int]) -> int:
    """A bulk import's fan-out: one task of an email kind per subscriber, queued from a worker.

    Publishing a task costs about a millisecond; an import of 100,000 rows hands over one
    of these per chunk instead, and the workers queue (and start sending) the rest.
    """
    task = EMAIL_TASKS[kind_name]
    celery = current_app.extensions["celery"]
    with celery.producer_or_acquire() as producer:
        for ident in ids:
            task.apply_async((ident,), producer=producer)
    log.info("queued %s %s email(s) for an import", len(ids), kind_name,
             extra={"email_kind": kind_name, "emails": len(ids)})
    return len(ids)


@shared_task(name=tasknames.QUEUE_CONFIRMATIONS)
def queue_confirmations(subscriber_ids: list[int]) -> int:
    """`queue_emails` of confirmations (the name imports queue them under)."""
    return queue_emails("confirmation", subscriber_ids)


@shared_task(name=tasknames.RECORD_CLICKS)
def record_clicks() -> dict:
    """Drain the redirect's Redis list of clicks into the database (commits per batch)."""
    result = drain.drain()
    if result.batches or result.recovered:
        log.info("clicks recorded: %s", result.as_dict(), extra=result.as_dict())
    return result.as_dict()


@shared_task(name=tasknames.EXPIRE_CLICKS)
def expire_clicks() -> dict:
    """Per-person clicks past CLICK_RETENTION_DAYS become counts (commits)."""
    result = retention.expire()
    if result["clicks_folded"]:
        log.info("clicks past retention folded into counts: %s", result, extra=result)
    return result


@shared_task(name=tasknames.DELIVER_WEBHOOKS)
def deliver_webhooks(message_ids: list[int]) -> dict:
    """Send these webhook messages (one endpoint's); each claim and outcome is committed."""
    return webhook_delivery.deliver(message_ids).as_dict()


@shared_task(name=tasknames.SWEEP_WEBHOOKS)
def sweep_webhooks() -> dict:
    """Beat: queue the webhook messages that are due (retries, lost tasks, killed workers)."""
    try:
        result = webhook_delivery.sweep()
    except DATABASE_DOWN as exc:
        db.session.rollback()
        log.warning("webhook sweep skipped: the database is not answering (%s)", database_down_reason(exc))
        return {"database": "down"}
    if result["queued"]:
        log.info("webhooks: queued %s due message(s)", result["queued"], extra=result)
    return result


@shared_task(name=tasknames.SEND_LETTERS)
def send_letters() -> dict:
    """Send the letters that are due (after a signature, and beat's pass); commits per message."""
    try:
        result = letters.send_due()
    except DATABASE_DOWN as exc:
        db.session.rollback()
        log.warning("letters not sent: the database is not answering (%s)", database_down_reason(exc))
        return {"database": "down"}
    except smtp.MailConfigError as exc:
        db.session.rollback()
        log.error("letters not sent: %s", exc)
        return {"config": str(exc)}
    if result.messages:
        log.info("letters: %s sent, %s refused, %s to try again", result.sent, result.failed, result.retried,
                 extra={"letters": vars(result)})
    return vars(result)


@shared_task(name=tasknames.ENTER_JOURNEYS)
def enter_journeys(trigger: str, subscriber_ids: list[int]) -> int:
    """People who confirmed (or were imported into one) enter the journeys of that trigger."""
    added = journeys.enter(trigger, subscriber_ids)
    db.session.commit()
    return added


@shared_task(name=tasknames.JOURNEY_SIGNED)
def journey_signed(signature_id: int) -> int:
    """A signature that counts: its signer enters the journeys of signed:SLUG."""
    added = journeys.on_signature(signature_id)
    db.session.commit()
    return added


@shared_task(name=tasknames.RUN_JOURNEYS)
def run_journeys() -> dict:
    """Beat's pass: due people get their next step, a batch of JOURNEY_BATCH per transaction,
    until none is due (or a minute of passes, the next beat carries on)."""
    limit = current_app.config["JOURNEY_BATCH"]
    totals: dict[str, int] = {"looked_at": 0, "queued": 0, "skipped": 0, "postponed": 0, "batches": 0}
    deadline = time.monotonic() + 50
    try:
        while True:
            done = journeys.run_due(limit=limit)
            db.session.commit()
            for key in totals:
                totals[key] += getattr(done, key)
            if done.looked_at < limit or time.monotonic() > deadline:
                break
    except DATABASE_DOWN as exc:
        db.session.rollback()
        log.warning("journeys not run: the database is not answering (%s)", database_down_reason(exc))
        return {"database": "down"}
    if totals["looked_at"]:
        log.info("journeys: %s due, %s steps queued, %s skipped, %s postponed by the daily cap",
                 totals["looked_at"], totals["queued"], totals["skipped"], totals["postponed"],
                 extra={"journeys": totals})
    return totals
