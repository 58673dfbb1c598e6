"""Reading a bounce or complaint: bytes in, a Report out. Pure: no database, no app.

A report is a DSN (RFC 3464, `multipart/report; report-type=delivery-status`), an ARF
complaint (RFC 5965, `report-type=feedback-report`), or an older non-standard bounce that
flufl.bounce (Mailman's detectors) recognises.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from email.utils import getaddresses
from itertools import islice

from ..mail.signed_ids import MESSAGE_ID_RE, VERP_RE
from ..models import BounceKind
from .mime import (
    CONTROL_RE,
    POLICY,
    header,
    header_text,
    parse,
    payload_text,
    walk,
)

log = logging.getLogger(__name__)

COMPLAINT_TYPES = {"abuse", "fraud"}
SEVERITY = {BounceKind.COMPLAINT: 4, BounceKind.HARD: 3, BounceKind.SOFT: 2, BounceKind.DELAYED: 1}

_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_REPLY_RE = re.compile(r"\b[45]\d\d[ -]")
_BOUNCE_SENDER_RE = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator", re.I)
# Delay warnings in the old formats (flufl.bounce's SimpleMatch takes some for failures).
_WARNING_RE = re.compile(
    r"this is a warning only|no action is required on your part|has not yet been delivered|"
    r"delivery attempts will continue|will be retried|delivery (?:has been |is )?delayed|"
    r"^warning: message \S+ delayed",
    re.IGNORECASE | re.MULTILINE,
)


# -- reading a report -----------------------------------------------------------------------


# What one report may cost to read: real reports are a few parts and one recipient block, and
# a sender retries a report we fail on for days, so past these the rest is left unread.
MAX_READ_BYTES = 1_000_000  # of the message; a report returning one of our alerts is well under
MAX_RECIPIENTS = 100  # recipient blocks (DSN), Original-Rcpt-To (ARF) or findings (heuristic)
MAX_TEXT = 1_000_000  # characters searched for VERP addresses, Message-IDs and statuses
MAX_HEURISTIC_BYTES = 64_000  # given to flufl.bounce, whose detectors take up to ~3 s a megabyte
MAX_FOUND = 50  # return paths or Message-IDs kept from each place they are looked for

# A DSN's delivery-status part is read as text: the stdlib makes a Message of every field block.
_DS_TYPE_RE = re.compile(
    rb"^(content-type[ \t]*:[ \t]*(?:\r?\n[ \t]+)?)message/((?:global-)?delivery-status)\b",
    re.IGNORECASE | re.MULTILINE,
)
_DS_TYPES = ("text/delivery-status", "text/global-delivery-status")
_RETURNED_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")
_BLANK_LINE_RE = re.compile(r"\r?\n[ \t]*\r?\n")
_HEADER_END_RE = re.compile(r"\r?\n\r?\n")
_ADDRESS_RE = re.compile(r"[^\s<>@\x00-\x1f\x7f]{1,64}@[^\s<>@\x00-\x1f\x7f]{1,255}")
# In the free text of a non-standard bounce: an enhanced status after an SMTP reply code, else
# one standing alone (not an IP address's octets, not a version number).
_REPLY_STATUS_RE = re.compile(r"\b[45]\d\d[ -]#?([45]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_LONE_STATUS_RE = re.compile(r"(?<![\w.])([45]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_PARTIAL_STATUS_RE = re.compile(r"^\s*([245])(?:\.(\d{1,3}))?(?!\d)")


@dataclass
class RecipientReport:
    kind: BounceKind
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


def classify(action: str | None, status: str | None) -> BounceKind | None:
    """A DSN recipient block's kind (RFC 3464 Action, RFC 3463 Status), or None if no failure.

    Hard is a failure about the address itself: X.1.x (bad mailbox, bad domain), 5.2.1
    (mailbox disabled), 5.4.4 (no route to the domain), or 5.0.0/none (when in doubt,
    hard, as Mailman says). Other permanent failures (mailbox full, message too large,
    content or policy blocks, network) say nothing certain about the address: soft, so a
    blocklisting of our server or a DMARC slip does not wipe out a whole provider's
    subscribers in one go. A 2.x.x status is a success whatever the action says; a status
    cut short (`4.4`, `5`) is read by what it has.
    """
    action = (action or "").strip().lower()
    match = _STATUS_RE.search(status or "")
    if match is not None:
        klass, subject, detail = match.groups()
    else:
        partial = _PARTIAL_STATUS_RE.match(status or "")
        klass, subject, detail = partial.groups("0") + ("0",) if partial else ("5", "0", "0")
    if klass == "2" or action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded
    if action == "delayed":
        return BounceKind.DELAYED
    code = f"{klass}.{subject}.{detail}"
    if klass == "5" and (subject in ("0", "1") or code in ("5.2.1", "5.4.4")):
        return BounceKind.HARD
    return BounceKind.SOFT


def _report_key(msg: email.message.Message, raw: bytes) -> str:
    mid = header(msg, "Message-ID").strip().lower()
    return hashlib.sha256(mid.encode() if mid else raw).hexdigest()


def _clean_address(value: str | None) -> str | None:
    """An address as a report gives it, if it could be one: one line, no spaces, an @."""
    addr = (value or "").strip().strip("<>").strip()
    return addr if len(addr) <= 320 and _ADDRESS_RE.fullmatch(addr) else None


def addresses(values: Iterable[str | None], limit: int = MAX_FOUND) -> list[str]:
    text = ", ".join(header_text(v) for v in values if v)[: limit * 400]  # it takes ~1 s a megabyte
    try:
        found = getaddresses([text]) if text else []
    except Exception:  # deeply nested comments make the stdlib recurse too far
        return []
    return [a for a in (_clean_address(addr) for _, addr in found) if a][:limit]


def _typed_address(value: str | None) -> str | None:
    """`rfc822; jane@example.org` -> jane@example.org."""
    if not value:
        return None
    return _clean_address(value.split(";", 1)[-1])


def one_line(value: str | None, limit: int = 1000) -> str | None:
    if not value:
        return None
    text = CONTROL_RE.sub("", " ".join(str(value).split()))
    return text[:limit] or None


def _header_blocks(part: email.message.Message, limit: int) -> list[email.message.Message]:
    """The first field blocks of a delivery-status (read as text) or feedback-report part."""
    if part.is_multipart():  # get_payload() of a text part can raise: see _payload_text
        return [p for p in part.get_payload() if isinstance(p, email.message.Message)][:limit]
    text = payload_text(part)[:MAX_TEXT]
    blocks = (block for block in _BLANK_LINE_RE.split(text) if block.strip())
    return [HeaderParser(policy=POLICY).parsestr(block) for block in islice(blocks, limit)]


def _returned_headers(report: email.message.Message) -> list[email.message.Message]:
    """The headers of the message a report returns (message/rfc822 or text/rfc822-headers)."""
    found = []
    for part in walk(report):
        if part.get_content_type() not in _RETURNED_TYPES:
            continue
        if not part.is_multipart():  # text/rfc822-headers
            found.append(HeaderParser(policy=POLICY).parsestr(payload_text(part)[:MAX_TEXT]))
        elif part.get_payload() and isinstance(inner := part.get_payload(0), email.message.Message):
            found.append(inner)
    return found[:MAX_FOUND]


def _texts(msg: email.message.Message, raw: bytes) -> str:
    """Everything a person could read in the report: the raw text and decoded text parts."""
    chunks = [raw[:MAX_TEXT].decode("utf-8", "replace")]
    budget = MAX_TEXT - len(chunks[0])
    for part in walk(msg):
        if budget <= 0:
            break
        cte = header(part, "Content-Transfer-Encoding").strip().lower()
        if part.get_content_maintype() == "text" and cte in ("base64", "quoted-printable"):
            chunks.append(payload_text(part)[:budget])
            budget -= len(chunks[-1])
    return "\n".join(chunks)


def _report_part(msg: email.message.Message, ctypes: Sequence[str]) -> email.message.Message | None:
    for part in walk(msg):
        if part.get_content_type() in ctypes:
            return part
    return None


def _parse_dsn(msg: email.message.Message, status_part: email.message.Message
               ) -> tuple[list[RecipientReport], str | None, list[str]]:
    blocks = _header_blocks(status_part, MAX_RECIPIENTS + 1)
    if not blocks:
        return [], None, []
    per_message, per_recipient = blocks[0], blocks[1:]
    if per_message.get("Final-Recipient") or per_message.get("Action"):
        per_message, per_recipient = email.message.Message(POLICY), blocks[:MAX_RECIPIENTS]
    reporter = one_line(header(per_message, "Reporting-MTA").split(";", 1)[-1], 255)
    envelope_ids = [header(per_message, "Original-Envelope-Id")]
    recipients = []
    for block in per_recipient:
        kind = classify(block.get("Action"), block.get("Status"))
        if kind is None:
            continue
        status = _STATUS_RE.search(header(block, "Status"))
        recipients.append(
            RecipientReport(
                kind=kind,
                status=status.group(0) if status else None,
                diagnostic=one_line(block.get("Diagnostic-Code")),
                address=_typed_address(block.get("Final-Recipient"))
                or _typed_address(block.get("Original-Recipient")),
            )
        )
    return recipients, reporter, [e for e in envelope_ids if e]


def _parse_arf(msg: email.message.Message, feedback_part: email.message.Message
               ) -> tuple[list[RecipientReport], str | None, list[str], str | None]:
    blocks = _header_blocks(feedback_part, 1)
    fields = blocks[0] if blocks else email.message.Message(POLICY)
    feedback_type = header(fields, "Feedback-Type").strip().lower()
    reporter = one_line(
        fields.get("Reported-Domain") or fields.get("Source") or fields.get("User-Agent"), 255
    )
    original_from = [header(fields, "Original-Mail-From")]
    if feedback_type not in COMPLAINT_TYPES:
        return [], reporter, original_from, feedback_type
    rcpts: Sequence[str | None] = (addresses(fields.get_all("Original-Rcpt-To") or [], MAX_RECIPIENTS)
                                   or [None])
    recipients = [
        RecipientReport(kind=BounceKind.COMPLAINT, status=None,
                        diagnostic=one_line(f"feedback-type {feedback_type}"), address=addr)
        for addr in rcpts
    ]
    return recipients, reporter, original_from, feedback_type


def looks_automatic(msg: email.message.Message, envelope_sender: str | None = None) -> bool:
    """Worth handing to the heuristic detectors: sent by a mail system, not by a person."""
    if envelope_sender is not None and envelope_sender.strip("<> ") == "":
        return True
    if header(msg, "Return-Path").strip() == "<>":
        return True
    if msg.get("X-Failed-Recipients") or msg.get_content_type() == "multipart/report":
        return True
    auto = header(msg, "Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return True
    return bool(_BOUNCE_SENDER_RE.search(header(msg, "From")))


def _heuristic(msg: email.message.Message, raw: bytes, text: str) -> list[RecipientReport]:
    """flufl.bounce's detectors (Mailman's), for bounces that are not RFC 3464."""
    try:
        from flufl.bounce import all_failures
    except ImportError:  # pragma: no cover - a dependency of the project
        log.warning("flufl.bounce is not installed; non-standard bounces are not read")
        return []
    if len(raw) > MAX_HEURISTIC_BYTES:
        msg = parse(raw[:MAX_HEURISTIC_BYTES])
    try:
        temporary, permanent = all_failures(msg)
    except Exception:  # a detector choking on an odd message must not stop the rest
        log.exception("flufl.bounce failed on a message")
        return []
    body = _HEADER_END_RE.split(text, 1)[-1]  # not the headers: Received IPs, version numbers
    found = _REPLY_STATUS_RE.search(body) or _LONE_STATUS_RE.search(body)
    status = found.group(1) if found else None
    diagnostic = next((line for line in body.splitlines() if _SMTP_REPLY_RE.search(line)), None)
    warning = _WARNING_RE.search(header(msg, "Subject")) or _WARNING_RE.search(text)
    out = []
    for addr in sorted(permanent):
        kind = BounceKind.DELAYED if warning else classify("failed", status)
        assert kind is not None  # a failure with a 4.x.x or 5.x.x status (or none) always has a kind
        out.append(RecipientReport(kind=kind, status=status, diagnostic=one_line(diagnostic),
                                   address=_clean_address(addr.decode(errors="replace"))))
    for addr in sorted(temporary - permanent):
        out.append(RecipientReport(kind=BounceKind.DELAYED, status=None, diagnostic=None,
                                   address=_clean_address(addr.decode(errors="replace"))))
    return out[:MAX_RECIPIENTS]


def parse_report(raw: bytes, envelope_rcpts: Sequence[str] = (), envelope_sender: str | None = None
                 ) -> Report | None:
    """What the message reports, or None if it is not a bounce or complaint at all."""
    msg = parse(_DS_TYPE_RE.sub(rb"\1text/\2", raw[:MAX_READ_BYTES]))
    text = _texts(msg, raw)
    returned = _returned_headers(msg)
    return_paths = list(envelope_rcpts)
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To"):
        return_paths += addresses(msg.get_all(name) or [])
    message_ids = [header(h, "Message-ID") for h in returned]
    reporter = None
    feedback_type = None
    form = "dsn"

    status_part = _report_part(msg, _DS_TYPES)
    feedback_part = _report_part(msg, ("message/feedback-report",))
    if feedback_part is not None:
        form = "arf"
        recipients, reporter, original_from, feedback_type = _parse_arf(msg, feedback_part)
        return_paths += original_from
        if not recipients:
            return None  # not-spam, virus, other: not a complaint to act on
        for original in returned:  # the complained-about message's own recipients
            for rcpt in recipients:
                if rcpt.address is None:
                    found = addresses(original.get_all("To") or [])
                    rcpt.address = found[0] if len(found) == 1 else None
    elif status_part is not None:
        recipients, reporter, envelope_ids = _parse_dsn(msg, status_part)
        return_paths += envelope_ids
        if not recipients:
            return None  # a success or relay notice
    elif looks_automatic(msg, envelope_sender):
        form = "heuristic"
        recipients = _heuristic(msg, raw, text)
        if not recipients:
            return None
    else:
        return None

    return_paths += [header(h, "Return-Path") for h in returned]
    return_paths += [m.group(0) for m in islice(VERP_RE.finditer(text), MAX_FOUND)]
    message_ids += [m.group(0) for m in islice(MESSAGE_ID_RE.finditer(text), MAX_FOUND)]
    if reporter is None:
        senders = addresses([msg.get("From")])
        reporter = one_line(senders[0].rpartition("@")[2], 255) if senders else None
    return Report(
        form=form,
        recipients=recipients,
        report_key=_report_key(msg, raw),
        reporter=reporter,
        return_paths=[p for p in return_paths if p],
        message_ids=[m for m in message_ids if m],
        feedback_type=feedback_type,
    )
