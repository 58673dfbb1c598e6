"""Bounces and complaints: read a report, find whom it is about, and act on it.


Whom it is about is decided by what only we can have made, in this order:
1. a VERP return path (`bounces+d<delivery>-<tag>@BOUNCE_DOMAIN`, `+c<subscriber>` for
   confirmations) that the report was sent to: the SMTP envelope, `Delivered-To`,
   `X-Original-To`, `To`, the ARF `Original-Mail-From`, the returned message's
   `Return-Path`, `Original-Envelope-Id`, or anywhere in the report's text;
2. the returned message's `Message-ID` (`<alert{A}.d{D}.{tag}@…>`, tagged like VERP).
Nothing else: an address in the report's body (Final-Recipient, an ARF's original
recipient) is never enough, whoever delivers the report (the open SMTP receiver or the
IMAP poller), because anyone can write a report that names anyone. A VERP address or
Message-ID whose tag does not verify is ignored; such a report is recorded at most as
"no subscriber matched".

A message sent to a subscriber's signed List-Unsubscribe address
(`unsubscribe+<key>-<tag>@BOUNCE_DOMAIN`, see mail/signed_ids.py) unsubscribes them at
once: that address is in their copy of an alert only, like the link.

What is done (the defaults follow listmonk and Mailman, see SOFT_* below):
- hard bounce: the address is suppressed at once (reason "hard-bounce") and the delivery,
  if it was recorded as sent, is marked failed;
- soft bounce: recorded; BOUNCE_SOFT_THRESHOLD of them within BOUNCE_SOFT_WINDOW_DAYS
  suppress the address (reason "soft-bounce");
- delayed (a DSN with Action: delayed): recorded, nothing else;
- complaint (ARF feedback type abuse or fraud): unsubscribed (consent event
  "unsubscribe:complaint") and suppressed (reason "complaint") at once.
Every report is recorded as a BounceEvent (without the address), once: the same report
seen again (a retried SMTP delivery, a second poll of a mailbox) changes nothing.
"""


from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32

import sqlalchemy as sa
from flask import current_app

from .. import suppressions, webhooks
from ..actions import letters
from ..extensions import db
from ..mail import smtp
from ..mail.signed_ids import parse_message_id, parse_return_path, parse_unsubscribe_address
from ..models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SuppressionLift,
    email_hash,
    utcnow,
)
from ..subscribers.subscriptions import Request, unsubscribe
from ..subscribers.tokens import subscriber_id_for_key
from ..webhooks import outbox
from .parsing import SEVERITY, RecipientReport, Report, addresses, one_line, parse_report

log = logging.getLogger(__name__)

# Unmatched recipients recorded per report: a report about one of ours names one recipient.
MAX_UNMATCHED_EVENTS = 10


# -- finding whom it is about ---------------------------------------------------------------


@dataclass
class Target:
    subscriber: Subscriber | None
    delivery: Delivery | None
    matched_by: str | None
    letter_id: int | None = None  # a letter to a decision-maker (not a subscriber)


def _delivery_target(delivery_id: int, matched_by: str, alert_id: int | None = None) -> Target:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (alert_id is not None and delivery.alert_id != alert_id):
        return Target(None, None, matched_by)  # ours, but the alert has been deleted since
    sub = db.session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
    return Target(sub, delivery, matched_by)


def trusted_target(report: Report) -> Target | None:
    """The delivery or subscriber a VERP address or Message-ID of ours names, if any."""
    for address in report.return_paths:
        for candidate in addresses([address]) or [address]:
            target = parse_return_path(candidate)
            if target is None:
                continue
            if target.kind == "d":
                return _delivery_target(target.ident, "verp")
            if target.kind == "l":
                return Target(None, None, "verp", letter_id=target.ident)
            return Target(db.session.get(Subscriber, target.ident), None, "verp")
    for message_id in report.message_ids:
        found = parse_message_id(message_id)
        if found is not None:
            return _delivery_target(found[1], "message-id", alert_id=found[0])
    return None


# Where a mail client's List-Unsubscribe message names our address: the SMTP envelope
# (the receiver), or, read from a mailbox, the headers the delivering server added.
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc")


def unsubscribe_key(raw: bytes, envelope_rcpts: Sequence[str] = ()) -> str | None:
    """The token key of a signed unsubscribe address this message was sent to, if any."""
    candidates = list(envelope_rcpts)
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536], headersonly=True)
        for name in _RECIPIENT_HEADERS:
            candidates += addresses(str(v) for v in headers.get_all(name) or [])
    except Exception:  # odd bytes in a header are not ours to judge: envelope only
        log.debug("unreadable recipient headers", exc_info=True)
    for address in candidates:
        key = parse_unsubscribe_address(address)
        if key is not None:
            return key
    return None


def _mailto_unsubscribe(key: str, source: str) -> Outcome:
    subscriber_id = subscriber_id_for_key(key)
    if subscriber_id is None:
        return Outcome(is_report=True, matched=True, events=["unsubscribe by email: subscriber gone"])
    unsubscribe(subscriber_id, Request(ip=None, user_agent=None, source=f"list-unsubscribe email ({source})"),
                via="mailto")
    log.info("unsubscribed subscriber %s by List-Unsubscribe email", subscriber_id,
             extra={"subscriber_id": subscriber_id})
    return Outcome(is_report=True, matched=True, events=["unsubscribed by email"])


# -- acting on it ------------------------------------------------------------------------------


@dataclass
class Outcome:
    is_report: bool = False
    matched: bool = False  # about one of ours: a subscriber, a delivery, a VERP address
    duplicate: bool = False
    events: list[str] = field(default_factory=list)  # what was done, one line per recipient


def _redact(text: str | None, addresses: Iterable[str | None]) -> str | None:
    if not text:
        return text
    for addr in {a.strip().lower() for a in addresses if a and "@" in a}:
        text = re.sub(re.escape(addr), "<recipient>", text, flags=re.IGNORECASE)
    return text


def _soft_count(sub: Subscriber) -> int:
    """Soft bounces since the window opened (or the last lift), one per message."""
    since = utcnow() - timedelta(days=current_app.config["BOUNCE_SOFT_WINDOW_DAYS"])
    lifted = db.session.scalar(
        sa.select(sa.func.max(SuppressionLift.lifted_at))
        .where(SuppressionLift.email_hash == email_hash(sub.email))
    )
    if lifted is not None and lifted > since:
        since = lifted
    row = db.session.execute(
        sa.select(
            sa.func.count(sa.distinct(BounceEvent.delivery_id)),
            sa.func.count(BounceEvent.id).filter(BounceEvent.delivery_id.is_(None)),
        ).where(
            BounceEvent.subscriber_id == sub.id,
            BounceEvent.kind == BounceKind.SOFT,
            BounceEvent.received_at >= since,
        )
    ).one()
    return int(row[0] or 0) + int(row[1] or 0)


def _bounce_data(sub: Subscriber, status: str | None, target: Target, *, via: str) -> dict:
    """A bounce or complaint event's data: who, the status code, which alert it answered."""
    alert_id = target.delivery.alert_id if target.delivery is not None else None
    return {"subscriber_id": sub.id, "email": sub.email, "status": status, "alert_id": alert_id, "via": via}


def _fail_delivery(delivery: Delivery | None, kind: str, status: str | None, diagnostic: str | None) -> None:
    if delivery is not None and delivery.status == DeliveryStatus.SENT:
        delivery.status = DeliveryStatus.FAILED
        delivery.error = one_line(f"bounced ({kind}): {status or ''} {diagnostic or ''}", 1000)


def _apply(report: Report, rcpt: RecipientReport, target: Target, source: str) -> str:
    """Record one recipient's event and do what its kind calls for; returns the outcome line."""
    sub = target.subscriber
    diagnostic = _redact(rcpt.diagnostic, [rcpt.address, sub.email if sub else None])
    event = BounceEvent(
        source=source,
        kind=rcpt.kind,
        subscriber_id=sub.id if sub else None,
        delivery_id=target.delivery.id if target.delivery else None,
        matched_by=target.matched_by,
        status=rcpt.status,
        diagnostic=diagnostic,
        reporter=report.reporter,
        report_key=report.report_key,
        outcome="recorded",
    )
    db.session.add(event)
    detail = one_line(f"{rcpt.status or ''} {diagnostic or ''}", 1000)
    if rcpt.kind in (BounceKind.HARD, BounceKind.SOFT):
        _fail_delivery(target.delivery, rcpt.kind, rcpt.status, diagnostic)
    if target.letter_id is not None:
        # A letter to a decision-maker: shown to staff on the action's page, no one suppressed.
        if rcpt.kind in (BounceKind.HARD, BounceKind.SOFT):
            marked = letters.bounced(target.letter_id, f"bounced ({rcpt.kind}): {detail}")
            event.outcome = "letter to a target marked bounced" if marked else "letter already marked"
        else:
            event.outcome = f"recorded ({rcpt.kind} about a letter to a target)"
    elif sub is None:
        gone = target.matched_by is not None
        event.outcome = "subscriber no longer exists" if gone else "no subscriber matched"
    elif rcpt.kind == BounceKind.HARD:
        added = suppressions.add(sub.email, "hard-bounce", detail)
        event.outcome = "suppressed" if added else "already suppressed"
        outbox.emit(webhooks.BOUNCE_HARD, _bounce_data(sub, rcpt.status, target, via="report"))
    elif rcpt.kind == BounceKind.SOFT:
        db.session.flush()
        count, threshold = _soft_count(sub), current_app.config["BOUNCE_SOFT_THRESHOLD"]
        days = current_app.config["BOUNCE_SOFT_WINDOW_DAYS"]
        if count >= threshold:
            added = suppressions.add(sub.email, "soft-bounce",
                             f"{count} soft bounces within {days} days; last: {detail or 'no detail'}")
            event.outcome = f"suppressed after {count} soft bounces" if added else "already suppressed"
        else:
            event.outcome = f"soft bounce {count} of {threshold} within {days} days"
    elif rcpt.kind == BounceKind.COMPLAINT:
        source_text = f"feedback report from {report.reporter}" if report.reporter else "feedback report"
        unsubscribe(sub.id, Request(ip=None, user_agent=None, source=source_text[:200]), via="complaint")
        suppressions.add(sub.email, "complaint", source_text)
        event.outcome = "unsubscribed and suppressed"
        outbox.emit(webhooks.COMPLAINT, {**_bounce_data(sub, rcpt.status, target, via="report"),
                                         "reporter": report.reporter})
    else:
        event.outcome = "recorded (delayed: no action)"
    return event.outcome


def process(raw: bytes, *, source: str, envelope_rcpts: Sequence[str] = (),
            envelope_sender: str | None = None, record_unmatched: bool = True) -> Outcome:
    """Read one message and act on it; the caller commits. Safe to call twice with the same report.

    Acts only on what names a delivery or subscriber by a signed id of ours (a VERP
    address, a Message-ID, a List-Unsubscribe address), so that nobody can get a
    subscriber suppressed or unsubscribed by sending a forged report that names them.
    """
    key = unsubscribe_key(raw, envelope_rcpts)
    if key is not None:
        return _mailto_unsubscribe(key, source)
    try:
        report = parse_report(raw, envelope_rcpts, envelope_sender)
    except Exception:  # reading it again will not help: no retry (451), it is dropped
        log.exception("a message could not be read as a report; dropped")
        return Outcome()
    if report is None or not report.recipients:
        return Outcome()
    seen = db.session.scalar(
        sa.select(BounceEvent.id).where(BounceEvent.report_key == report.report_key).limit(1)
    )
    if seen is not None:
        return Outcome(is_report=True, matched=True, duplicate=True)
    outcome = Outcome(is_report=True)
    target = trusted_target(report)
    if target is not None:
        worst = max(report.recipients, key=lambda r: SEVERITY[r.kind])
        outcome.matched = True
        outcome.events.append(_apply(report, worst, target, source))
    elif record_unmatched:
        for rcpt in report.recipients[:MAX_UNMATCHED_EVENTS]:
            outcome.events.append(_apply(report, rcpt, Target(None, None, None), source))
    log.info("%s report %s: %s", report.form, report.report_key[:12], "; ".join(outcome.events) or "nothing")
    return outcome




def confirmation_refused(subscriber_id: int, exc: BaseException) -> bool:
    """A 5xx at RCPT for an email to a subscriber (a confirmation, the welcome) is a hard bounce,
    as it is for an alert; the caller commits."""
    refusal = smtp.refusal(exc)
    if not refusal.hard_bounce:
        return False
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        return False
    outbox.emit(webhooks.BOUNCE_HARD, {"subscriber_id": sub.id, "email": sub.email,
                                       "status": str(refusal.code), "alert_id": None, "via": "smtp"})
    return suppressions.add(sub.email, "hard-bounce", one_line(refusal.detail))


def suppress_manually(address: str, *, by: str, note: str) -> bool:
    """Staff add an address by hand; the caller commits."""
    return suppressions.add(suppressions.stored_form(address), "manual", one_line(f"Added by {by}: {note}"))
