"""Bounces and complaints: read a report, find whom it is about, and act on it.

A report is a DSN (RFC 3464, `multipart/report; report-type=delivery-status`), an ARF
complaint (RFC 5965, `report-type=feedback-report`), or an older non-standard bounce that
flufl.bounce (Mailman's detectors) recognises.

Whom it is about is decided by what only we can have made, in this order:
1. a VERP return path (`bounces+d<delivery>-<tag>@BOUNCE_DOMAIN`, `+c<subscriber>` for
   confirmations) that the report was sent to: the SMTP envelope, `Delivered-To`,
   `X-Original-To`, `To`, the ARF `Original-Mail-From`, the returned message's
   `Return-Path`, `Original-Envelope-Id`, or anywhere in the report's text;
2. the returned message's `Message-ID` (`<alert{A}.d{D}.{tag}@…>`, tagged like VERP);
3. only then an address in the report's body (Final-Recipient, Original-Rcpt-To, flufl's
   findings), and only when it is exactly a known subscriber's address.
A VERP address or Message-ID whose tag does not verify is ignored, so a forged report can
at most name a subscriber by address (3).

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

import email
import email.message
import hashlib
import hmac
import logging
import re
import smtplib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from email.parser import HeaderParser
from email.utils import getaddresses

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from . import verp
from .config import _int
from .extensions import db
from .models import (
    BounceEvent,
    BounceKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    Suppression,
    SuppressionLift,
    email_hash,
    utcnow,
)

log = logging.getLogger(__name__)

# Soft bounces before an address is suppressed, and the window they are counted in.
# References: listmonk counts soft bounces (default bounce.actions soft count 2, action
# "none": it only records them) and acts on one hard bounce or one complaint (count 1,
# "blocklist"); Mailman 3 disables a member at bounce_score_threshold 5 and forgets bounce
# information after bounce_info_stale_after 7 days, scoring at most one bounce a day.
# Here: 3 soft bounces, each from a different message (one alert is one strike however
# many reports it draws), within 7 days; a lift starts the count afresh.
SOFT_THRESHOLD_DEFAULT = 3
SOFT_WINDOW_DAYS_DEFAULT = 7
# The bounce receiver refuses larger messages (552); a DSN returning one of our alerts is
# well under 1 MB.
MAX_MESSAGE_BYTES_DEFAULT = 10_000_000

COMPLAINT_TYPES = {"abuse", "fraud"}
SEVERITY = {BounceKind.COMPLAINT: 4, BounceKind.HARD: 3, BounceKind.SOFT: 2, BounceKind.DELAYED: 1}

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY_RE = re.compile(r"\b[45]\d\d[ -]")
_VERP_RE = re.compile(rf"{verp.LOCAL_PREFIX}\+[dc]\d+-[0-9a-f]{{10}}@[A-Za-z0-9.-]+", re.IGNORECASE)
_MESSAGE_ID_RE = re.compile(r"alert(\d+)\.d(\d+)\.([0-9a-f]{12})@[^\s<>\"]+", re.IGNORECASE)
_BOUNCE_SENDER_RE = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator", re.I)
# Delay warnings in the old formats (flufl.bounce's SimpleMatch takes some for failures).
_WARNING_RE = re.compile(
    r"this is a warning only|no action is required on your part|has not yet been delivered|"
    r"delivery attempts will continue|will be retried|delivery (?:has been |is )?delayed|"
    r"^warning: message \S+ delayed",
    re.IGNORECASE | re.MULTILINE,
)


def setting(name: str):
    """A bounce setting from the app config, else the environment, else the default."""
    defaults = {
        "BOUNCE_SOFT_THRESHOLD": SOFT_THRESHOLD_DEFAULT,
        "BOUNCE_SOFT_WINDOW_DAYS": SOFT_WINDOW_DAYS_DEFAULT,
        "BOUNCE_MAX_MESSAGE_BYTES": MAX_MESSAGE_BYTES_DEFAULT,
    }
    value = current_app.config.get(name)
    return int(value) if value is not None else _int(name, defaults[name])


# -- reading a report -----------------------------------------------------------------------


@dataclass
class RecipientReport:
    kind: str
    status: str | None = None
    diagnostic: str | None = None
    address: str | None = None  # as the report names it: used only to match a known subscriber


@dataclass
class Report:
    """What a report says, before anyone is looked up."""

    form: str  # dsn | arf | heuristic
    recipients: list[RecipientReport]
    report_key: str
    reporter: str | None = None
    return_paths: list[str] = field(default_factory=list)  # where VERP addresses may be
    message_ids: list[str] = field(default_factory=list)  # the returned message's ids
    feedback_type: str | None = None


def classify(action: str | None, status: str | None) -> str | None:
    """A DSN recipient block's kind (RFC 3464 Action, RFC 3463 Status), or None if no failure.

    Hard is a failure about the address itself: X.1.x (bad mailbox, bad domain), 5.2.1
    (mailbox disabled), 5.4.4 (no route to the domain), or 5.0.0/none (when in doubt,
    hard, as Mailman says). Other permanent failures (mailbox full, message too large,
    content or policy blocks, network) say nothing certain about the address: soft, so a
    blocklisting of our server or a DMARC slip does not wipe out a whole provider's
    subscribers in one go.
    """
    action = (action or "").strip().lower()
    if action == "delayed":
        return BounceKind.DELAYED
    if action != "failed":
        return None  # delivered, relayed, expanded
    match = _STATUS_RE.search(status or "")
    if match is None:
        return BounceKind.HARD
    klass, subject, detail = match.groups()
    code = f"{klass}.{subject}.{detail}"
    if klass == "5" and (subject in ("0", "1") or code in ("5.2.1", "5.4.4")):
        return BounceKind.HARD
    if klass == "2":
        return None
    return BounceKind.SOFT


def _report_key(msg: email.message.Message, raw: bytes) -> str:
    mid = (msg.get("Message-ID") or "").strip().lower()
    return hashlib.sha256(mid.encode() if mid else raw).hexdigest()


def _addresses(values: Iterable[str | None]) -> list[str]:
    out = []
    for _, addr in getaddresses([v for v in values if v]):
        if addr and "@" in addr:
            out.append(addr.strip())
    return out


def _typed_address(value: str | None) -> str | None:
    """`rfc822; jane@example.org` -> jane@example.org."""
    if not value:
        return None
    addr = value.split(";", 1)[-1].strip().strip("<>").strip()
    return addr if "@" in addr else None


def _one_line(value: str | None, limit: int = 1000) -> str | None:
    if not value:
        return None
    text = " ".join(str(value).split())
    return text[:limit] or None


def _header_blocks(part: email.message.Message) -> list[email.message.Message]:
    """The field blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, email.message.Message)]
    if isinstance(payload, str):  # some parsers leave it as text: split on blank lines
        text = payload.replace("\r\n", "\n")
        return [HeaderParser().parsestr(block) for block in re.split(r"\n\s*\n", text) if block.strip()]
    return []


def _returned_headers(report: email.message.Message) -> list[email.message.Message]:
    """The headers of the message a report returns (message/rfc822 or text/rfc822-headers)."""
    found = []
    for part in report.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                found.append(payload[0])
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            found.append(HeaderParser().parsestr(text.decode("utf-8", "replace")))
    return found


def _texts(msg: email.message.Message, raw: bytes) -> str:
    """Everything a person could read in the report: the raw text and decoded text parts."""
    chunks = [raw.decode("utf-8", "replace")]
    for part in msg.walk():
        if part.get_content_maintype() == "text" and part.get("Content-Transfer-Encoding", "").lower() in (
            "base64",
            "quoted-printable",
        ):
            data = part.get_payload(decode=True) or b""
            chunks.append(data.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(chunks)


def _report_part(msg: email.message.Message, ctype: str) -> email.message.Message | None:
    for part in msg.walk():
        if part.get_content_type() == ctype:
            return part
    return None


def _parse_dsn(msg, status_part) -> tuple[list[RecipientReport], str | None, list[str]]:
    blocks = _header_blocks(status_part)
    if not blocks:
        return [], None, []
    per_message, per_recipient = blocks[0], blocks[1:]
    if per_message.get("Final-Recipient") or per_message.get("Action"):
        per_message, per_recipient = email.message.Message(), blocks  # no per-message block
    reporter = _one_line((per_message.get("Reporting-MTA") or "").split(";", 1)[-1], 255)
    envelope_ids = [per_message.get("Original-Envelope-Id") or ""]
    recipients = []
    for block in per_recipient:
        kind = classify(block.get("Action"), block.get("Status"))
        if kind is None:
            continue
        status = _STATUS_RE.search(block.get("Status") or "")
        recipients.append(
            RecipientReport(
                kind=kind,
                status=status.group(0) if status else None,
                diagnostic=_one_line(block.get("Diagnostic-Code")),
                address=_typed_address(block.get("Final-Recipient"))
                or _typed_address(block.get("Original-Recipient")),
            )
        )
    return recipients, reporter, [e for e in envelope_ids if e]


def _parse_arf(msg, feedback_part) -> tuple[list[RecipientReport], str | None, list[str], str | None]:
    blocks = _header_blocks(feedback_part)
    fields = blocks[0] if blocks else email.message.Message()
    feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
    reporter = _one_line(
        fields.get("Reported-Domain") or fields.get("Source") or fields.get("User-Agent"), 255
    )
    original_from = [fields.get("Original-Mail-From") or ""]
    if feedback_type not in COMPLAINT_TYPES:
        return [], reporter, original_from, feedback_type
    addresses = _addresses(fields.get_all("Original-Rcpt-To") or []) or [None]
    recipients = [
        RecipientReport(kind=BounceKind.COMPLAINT, status=None,
                        diagnostic=_one_line(f"feedback-type {feedback_type}"), address=addr)
        for addr in addresses
    ]
    return recipients, reporter, original_from, feedback_type


def looks_automatic(msg: email.message.Message, envelope_sender: str | None = None) -> bool:
    """Worth handing to the heuristic detectors: sent by a mail system, not by a person."""
    if envelope_sender is not None and envelope_sender.strip("<> ") == "":
        return True
    if (msg.get("Return-Path") or "").strip() == "<>":
        return True
    if msg.get("X-Failed-Recipients") or msg.get_content_type() == "multipart/report":
        return True
    auto = (msg.get("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return True
    return bool(_BOUNCE_SENDER_RE.search(msg.get("From") or ""))


def _heuristic(msg, text: str) -> list[RecipientReport]:
    """flufl.bounce's detectors (Mailman's), for bounces that are not RFC 3464."""
    try:
        from flufl.bounce import all_failures
    except ImportError:  # pragma: no cover - a dependency of the project
        log.warning("flufl.bounce is not installed; non-standard bounces are not read")
        return []
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on an odd message must not stop the rest
        log.exception("flufl.bounce failed on a message")
        return []
    status = _STATUS_RE.search(text)
    diagnostic = next((line for line in text.splitlines() if _SMTP_REPLY_RE.search(line)), None)
    warning = _WARNING_RE.search(msg.get("Subject") or "") or _WARNING_RE.search(text)
    out = []
    for addr in sorted(permanent):
        kind = BounceKind.DELAYED if warning else classify("failed", status.group(0) if status else None)
        out.append(RecipientReport(kind=kind, status=status.group(0) if status else None,
                                   diagnostic=_one_line(diagnostic), address=addr.decode(errors="replace")))
    for addr in sorted(temporary - permanent):
        out.append(RecipientReport(kind=BounceKind.DELAYED, status=None, diagnostic=None,
                                   address=addr.decode(errors="replace")))
    return out


def parse_report(raw: bytes, envelope_rcpts: Sequence[str] = (), envelope_sender: str | None = None
                 ) -> Report | None:
    """What the message reports, or None if it is not a bounce or complaint at all."""
    msg = email.message_from_bytes(raw)
    text = _texts(msg, raw)
    returned = _returned_headers(msg)
    return_paths = list(envelope_rcpts)
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        return_paths += _addresses(msg.get_all(name) or [])
    message_ids = [h.get("Message-ID") or "" for h in returned]
    reporter = None
    feedback_type = None
    form = "dsn"

    status_part = _report_part(msg, "message/delivery-status")
    feedback_part = _report_part(msg, "message/feedback-report")
    if feedback_part is not None:
        form = "arf"
        recipients, reporter, original_from, feedback_type = _parse_arf(msg, feedback_part)
        return_paths += original_from
        if not recipients:
            return None  # not-spam, virus, other: not a complaint to act on
        for original in returned:  # the complained-about message's own recipients
            for rcpt in recipients:
                if rcpt.address is None:
                    found = _addresses(original.get_all("To") or [])
                    rcpt.address = found[0] if len(found) == 1 else None
    elif status_part is not None:
        recipients, reporter, envelope_ids = _parse_dsn(msg, status_part)
        return_paths += envelope_ids
        if not recipients:
            return None  # a success or relay notice
    elif looks_automatic(msg, envelope_sender):
        form = "heuristic"
        recipients = _heuristic(msg, text)
        if not recipients:
            return None
    else:
        return None

    return_paths += [h.get("Return-Path") or "" for h in returned]
    return_paths += _VERP_RE.findall(text)
    message_ids += [m.group(0) for m in _MESSAGE_ID_RE.finditer(text)]
    if reporter is None:
        senders = _addresses([msg.get("From")])
        reporter = _one_line(senders[0].rpartition("@")[2], 255) if senders else None
    return Report(
        form=form,
        recipients=recipients,
        report_key=_report_key(msg, raw),
        reporter=reporter,
        return_paths=[p for p in return_paths if p],
        message_ids=[m for m in message_ids if m],
        feedback_type=feedback_type,
    )


# -- finding whom it is about ---------------------------------------------------------------


@dataclass
class Target:
    subscriber: Subscriber | None
    delivery: Delivery | None
    matched_by: str


def _message_id_tag(key: bytes, delivery_id: int) -> str:
    """As blasts.MessageFactory.message_id tags it."""
    return hmac.new(key, f"{delivery_id}".encode(), hashlib.sha256).hexdigest()[:12]


def delivery_from_message_id(message_id: str) -> tuple[int, int] | None:
    """(alert id, delivery id) of one of our alert Message-IDs whose tag verifies."""
    match = _MESSAGE_ID_RE.search(message_id or "")
    if match is None:
        return None
    alert_id, delivery_id, tag = int(match.group(1)), int(match.group(2)), match.group(3).lower()
    for key in current_app.config["SECRET_KEYS"]:
        if hmac.compare_digest(_message_id_tag(key.encode(), delivery_id), tag):
            return alert_id, delivery_id
    return None


def _delivery_target(delivery_id: int, matched_by: str, alert_id: int | None = None) -> Target:
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or (alert_id is not None and delivery.alert_id != alert_id):
        return Target(None, None, matched_by)  # ours, but the alert has been deleted since
    sub = db.session.get(Subscriber, delivery.subscriber_id) if delivery.subscriber_id else None
    return Target(sub, delivery, matched_by)


def trusted_target(report: Report) -> Target | None:
    """The delivery or subscriber a VERP address or Message-ID of ours names, if any."""
    for address in report.return_paths:
        for candidate in _addresses([address]) or [address]:
            target = verp.parse(candidate)
            if target is None:
                continue
            if target.kind == "d":
                return _delivery_target(target.ident, "verp")
            return Target(db.session.get(Subscriber, target.ident), None, "verp")
    for message_id in report.message_ids:
        found = delivery_from_message_id(message_id)
        if found is not None:
            return _delivery_target(found[1], "message-id", alert_id=found[0])
    return None


def subscriber_by_address(address: str | None) -> Subscriber | None:
    if not address or "@" not in address:
        return None
    return db.session.scalar(
        sa.select(Subscriber).where(sa.func.lower(Subscriber.email) == address.strip().lower())
    )


# -- acting on it ------------------------------------------------------------------------------


@dataclass
class Outcome:
    is_report: bool = False
    matched: bool = False  # about one of ours: a subscriber, a delivery, a VERP address
    duplicate: bool = False
    events: list[str] = field(default_factory=list)  # what was done, one line per recipient


def suppress(email_address: str, reason: str, detail: str | None) -> bool:
    """Add the address to the suppression list; False if it was there already."""
    key = email_hash(email_address)
    if db.session.scalar(sa.select(Suppression.id).where(Suppression.email_hash == key)) is not None:
        return False
    try:
        with db.session.begin_nested():
            db.session.add(Suppression(email_hash=key, email=email_address, reason=reason,
                                       detail=(detail or "")[:2000] or None))
    except IntegrityError:  # a concurrent report or send path got there first
        return False
    return True


def _redact(text: str | None, addresses: Iterable[str | None]) -> str | None:
    if not text:
        return text
    for addr in {a.strip().lower() for a in addresses if a and "@" in a}:
        text = re.sub(re.escape(addr), "<recipient>", text, flags=re.IGNORECASE)
    return text


def _soft_count(sub: Subscriber) -> int:
    """Soft bounces since the window opened (or the last lift), one per message."""
    since = utcnow() - timedelta(days=setting("BOUNCE_SOFT_WINDOW_DAYS"))
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


def _fail_delivery(delivery: Delivery | None, kind: str, status: str | None, diagnostic: str | None) -> None:
    if delivery is not None and delivery.status == DeliveryStatus.SENT:
        delivery.status = DeliveryStatus.FAILED
        delivery.error = _one_line(f"bounced ({kind}): {status or ''} {diagnostic or ''}", 1000)


def _apply(report: Report, rcpt: RecipientReport, target: Target, source: str) -> str:
    """Record one recipient's event and do what its kind calls for; returns the outcome line."""
    from .subscriptions import Request, unsubscribe

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
    detail = _one_line(f"{rcpt.status or ''} {diagnostic or ''}", 1000)
    if rcpt.kind in (BounceKind.HARD, BounceKind.SOFT):
        _fail_delivery(target.delivery, rcpt.kind, rcpt.status, diagnostic)
    if sub is None:
        gone = target.matched_by is not None
        event.outcome = "subscriber no longer exists" if gone else "no subscriber matched"
    elif rcpt.kind == BounceKind.HARD:
        added = suppress(sub.email, "hard-bounce", detail)
        event.outcome = "suppressed" if added else "already suppressed"
    elif rcpt.kind == BounceKind.SOFT:
        db.session.flush()
        count, threshold = _soft_count(sub), setting("BOUNCE_SOFT_THRESHOLD")
        days = setting("BOUNCE_SOFT_WINDOW_DAYS")
        if count >= threshold:
            added = suppress(sub.email, "soft-bounce",
                             f"{count} soft bounces within {days} days; last: {detail or 'no detail'}")
            event.outcome = f"suppressed after {count} soft bounces" if added else "already suppressed"
        else:
            event.outcome = f"soft bounce {count} of {threshold} within {days} days"
    elif rcpt.kind == BounceKind.COMPLAINT:
        source_text = f"feedback report from {report.reporter}" if report.reporter else "feedback report"
        unsubscribe(sub.id, Request(ip=None, user_agent=None, source=source_text[:200]), via="complaint")
        suppress(sub.email, "complaint", source_text)
        event.outcome = "unsubscribed and suppressed"
    else:
        event.outcome = "recorded (delayed: no action)"
    return event.outcome


def process(raw: bytes, *, source: str, envelope_rcpts: Sequence[str] = (),
            envelope_sender: str | None = None, record_unmatched: bool = True,
            match_addresses: bool = True) -> Outcome:
    """Read one message and act on it; commits. Safe to call twice with the same report.

    `match_addresses=False` acts only on reports that name a delivery by its signed VERP
    address or Message-ID: the open SMTP receiver uses it, so that nobody can get a
    subscriber suppressed by mailing it a forged report that merely names their address.
    """
    report = parse_report(raw, envelope_rcpts, envelope_sender)
    if report is None:
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
    else:
        for rcpt in report.recipients:
            sub = subscriber_by_address(rcpt.address) if match_addresses else None
            if sub is not None:
                outcome.matched = True
                outcome.events.append(_apply(report, rcpt, Target(sub, None, "address"), source))
            elif record_unmatched:
                outcome.events.append(_apply(report, rcpt, Target(None, None, None), source))
    db.session.commit()
    log.info("%s report %s: %s", report.form, report.report_key[:12], "; ".join(outcome.events) or "nothing")
    return outcome


# -- SMTP-time refusals of confirmations, and the staff's own changes --------------------------------


def confirmation_refused(subscriber_id: int, exc: BaseException) -> bool:
    """A 5xx at RCPT for a confirmation is a hard bounce, as it is for an alert."""
    if not isinstance(exc, smtplib.SMTPRecipientsRefused):
        return False
    codes = list(exc.recipients.values())
    if not codes or not all(500 <= code < 600 for code, _ in codes):
        return False
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        return False
    code, text = codes[0]
    text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
    added = suppress(sub.email, "hard-bounce", _one_line(f"{code} {text}"))
    db.session.commit()
    return added


def stored_form(address: str) -> str:
    """The address as a subscriber row spells it, so start_blast's equality check matches."""
    sub = subscriber_by_address(address)
    if sub is not None:
        return sub.email
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def suppress_manually(address: str, *, by: str, note: str) -> bool:
    added = suppress(stored_form(address), "manual", _one_line(f"Added by {by}: {note}"))
    db.session.commit()
    return added


def lift(suppression_id: int, *, by: str, reason: str) -> SuppressionLift | None:
    """Remove an entry, keeping who lifted it, why and when, with what it said."""
    row = db.session.get(Suppression, suppression_id, with_for_update=True)
    if row is None:
        return None
    record = SuppressionLift(
        email_hash=row.email_hash,
        email=row.email,
        reason=row.reason,
        detail=row.detail,
        suppressed_at=row.created_at,
        lifted_by=by,
        lift_reason=reason.strip(),
    )
    db.session.add(record)
    db.session.delete(row)
    db.session.commit()
    return record


# -- erasure ------------------------------------------------------------------------------------


def _forget(email_address: str, key: str, subscriber_id: int) -> None:
    """On erasure: bounce diagnostics and lifted entries' details may quote the address."""
    db.session.execute(
        sa.update(BounceEvent).where(BounceEvent.subscriber_id == subscriber_id).values(diagnostic=None)
    )
    db.session.execute(
        sa.update(SuppressionLift).where(SuppressionLift.email_hash == key).values(detail=None)
    )


def _register_erase_hook() -> None:
    from . import privacy

    hooks = getattr(privacy, "ERASE_HOOKS", None)
    if hooks is not None and _forget not in hooks:
        hooks.append(_forget)


_register_erase_hook()
