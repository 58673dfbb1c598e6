"""Celery tasks: thin wrappers that commit, retry and log around plain functions.

Task names are the contract with the workers and with `queueing` (domain code queues by
name and never imports this module).
"""

from __future__ import annotations

import contextlib
import logging
import random
import smtplib

import sqlalchemy as sa
from celery import shared_task
from flask import current_app

from . import welcome
from .actions import signing
from .blasts import abtest, dispatch, recovery, scheduling, sending
from .bounces import processing
from .extensions import db
from .mail import smtp
from .subscribers import confirmations, subscriptions
from .tracking import drain, retention

log = logging.getLogger(__name__)


def backoff_seconds(retries: int) -> float:
    """Exponential backoff with full jitter, capped; base and cap come from config."""
    cfg = current_app.config
    cap = min(cfg["MAIL_RETRY_BACKOFF_MAX"], cfg["MAIL_RETRY_BACKOFF"] * (2**retries))
    return random.uniform(cap / 2, cap)


@shared_task(bind=True, name="alerts.tasks.send_confirmation", max_retries=None)
def send_confirmation(self, subscriber_id: int) -> bool:
    try:
        return confirmations.send_confirmation(subscriber_id)
    except (OSError, smtplib.SMTPException) as exc:
        if smtp.refusal(exc).permanent:
            log.warning("confirmation to subscriber %s refused: %s", subscriber_id, exc,
                        extra={"subscriber_id": subscriber_id})
            processing.confirmation_refused(subscriber_id, exc)  # a 5xx at RCPT: a hard bounce
            db.session.commit()
            return False
        if self.request.retries >= current_app.config["MAIL_MAX_RETRIES"]:
            log.error("confirmation to subscriber %s given up: %s", subscriber_id, exc,
                      extra={"subscriber_id": subscriber_id})
            raise
        delay = backoff_seconds(self.request.retries)
        log.info("confirmation to subscriber %s retried in %.1fs: %s", subscriber_id, delay, exc,
                 extra={"subscriber_id": subscriber_id})
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(name="alerts.tasks.handle_signup")
def handle_signup(attempt_id: int) -> int | None:
    """A signup as received by `POST /subscribe`: decided here, so the answer could not tell."""
    subscriber_id = confirmations.handle_signup(attempt_id)
    db.session.commit()
    return subscriber_id


@shared_task(bind=True, name="alerts.tasks.send_welcome", max_retries=None)
def send_welcome(self, subscriber_id: int) -> bool:
    try:
        return welcome.send_welcome(subscriber_id)
    except (OSError, smtplib.SMTPException) as exc:
        if smtp.refusal(exc).permanent:
            log.warning("welcome to subscriber %s refused: %s", subscriber_id, exc,
                        extra={"subscriber_id": subscriber_id})
            return False
        welcome.release(subscriber_id)
        if self.request.retries >= current_app.config["MAIL_MAX_RETRIES"]:
            raise
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task(bind=True, name="alerts.tasks.send_signature_confirmation", max_retries=None)
def send_signature_confirmation(self, signature_id: int) -> bool:
    try:
        return signing.send_signature_confirmation(signature_id)
    except (OSError, smtplib.SMTPException) as exc:
        if smtp.refusal(exc).permanent or self.request.retries >= current_app.config["MAIL_MAX_RETRIES"]:
            log.warning("signature confirmation %s not sent: %s", signature_id, exc,
                        extra={"signature_id": signature_id})
            return False
        raise self.retry(exc=exc, countdown=backoff_seconds(self.request.retries)) from exc


@shared_task(name="alerts.tasks.dispatch_blast")
def dispatch_blast(alert_id: int) -> int:
    return dispatch.dispatch(alert_id)


@shared_task(name="alerts.tasks.fill_blast")
def fill_blast(alert_id: int) -> int:
    return dispatch.fill(alert_id)


@shared_task(bind=True, name="alerts.tasks.send_batch", max_retries=None)
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


@shared_task(name="alerts.tasks.start_scheduled")
def start_scheduled() -> list[int]:
    started = scheduling.start_due()
    for alert_id in started:
        log.info("alert %s: scheduled send started", alert_id, extra={"alert_id": alert_id})
    return started


@shared_task(name="alerts.tasks.sweep")
def sweep() -> dict:
    result = recovery.sweep()
    signups = subscriptions.stale_attempts()
    for attempt_id in signups:
        confirmations.handle_signup(attempt_id)
        db.session.commit()
    result["signups_applied"] = len(signups)
    unsent = subscriptions.claim_unsent_confirmations()
    for subscriber_id in unsent:
        confirmations.queue(subscriber_id)
    unwelcomed = welcome.unsent()
    for subscriber_id in unwelcomed:
        welcome.queue(subscriber_id)
    db.session.commit()
    result["confirmations_queued"] = len(unsent)
    result["welcomes_queued"] = len(unwelcomed)
    if result["returned"] or result["redispatched"] or unsent or signups or unwelcomed:
        log.warning("sweep: %s", result, extra=result)
    return result


@shared_task(name="alerts.tasks.decide_ab_tests")
def decide_ab_tests() -> dict:
    """Beat: A/B tests' circuit breakers, and winners once their wait is over (commits per test)."""
    done = abtest.decide_due()
    if done:
        log.info("A/B tests: %s", done, extra={"ab_tests": done})
    return done


@shared_task(name="alerts.tasks.queue_confirmations")
def queue_confirmations(subscriber_ids: list[int]) -> int:
    """A bulk import's fan-out: one send_confirmation task per subscriber, queued from a worker.

    Publishing a task costs about a millisecond; an import of 100,000 rows hands over one
    of these per chunk instead, and the workers queue (and start sending) the rest.
    """
    celery = current_app.extensions["celery"]
    with celery.producer_or_acquire() as producer:
        for subscriber_id in subscriber_ids:
            send_confirmation.apply_async((subscriber_id,), producer=producer)
    log.info("queued %s confirmation(s) for an import", len(subscriber_ids),
             extra={"confirmations": len(subscriber_ids)})
    return len(subscriber_ids)


@shared_task(name="alerts.tasks.record_clicks")
def record_clicks() -> dict:
    """Drain the redirect's Redis list of clicks into the database (commits per batch)."""
    result = drain.drain()
    if result.batches or result.recovered:
        log.info("clicks recorded: %s", result.as_dict(), extra=result.as_dict())
    return result.as_dict()


@shared_task(name="alerts.tasks.expire_clicks")
def expire_clicks() -> dict:
    """Per-person clicks past CLICK_RETENTION_DAYS become counts (commits)."""
    result = retention.expire()
    if result["clicks_folded"]:
        log.info("clicks past retention folded into counts: %s", result, extra=result)
    return result
