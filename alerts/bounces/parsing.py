"""Reading a bounce or complaint: bytes in, a Report out. Pure: no database, no app.

A report is a DSN (RFC 3464, `multipart/report; report-type=delivery-status`), an ARF
complaint (RFC 5965, `report-type=feedback-report`), or an older non-standard bounce that
flufl.bounce (Mailman's detectors) recognises.
"""

from __future__ import annotations

import email
import email.message
import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import HeaderParser
from email.utils import getaddresses

from ..mail.signed_ids import MESSAGE_ID_RE, VERP_RE
from ..models import BounceKind

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


def addresses(values: Iterable[str | None]) -> list[str]:
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


def one_line(value: str | None, limit: int = 1000) -> str | None:
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
    reporter = one_line((per_message.get("Reporting-MTA") or "").split(";", 1)[-1], 255)
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
                diagnostic=one_line(block.get("Diagnostic-Code")),
                address=_typed_address(block.get("Final-Recipient"))
                or _typed_address(block.get("Original-Recipient")),
            )
        )
    return recipients, reporter, [e for e in envelope_ids if e]


def _parse_arf(msg, feedback_part) -> tuple[list[RecipientReport], str | None, list[str], str | None]:
    blocks = _header_blocks(feedback_part)
    fields = blocks[0] if blocks else email.message.Message()
    feedback_type = (fields.get("Feedback-Type") or "").strip().lower()
    reporter = one_line(
        fields.get("Reported-Domain") or fields.get("Source") or fields.get("User-Agent"), 255
    )
    original_from = [fields.get("Original-Mail-From") or ""]
    if feedback_type not in COMPLAINT_TYPES:
        return [], reporter, original_from, feedback_type
    rcpts = addresses(fields.get_all("Original-Rcpt-To") or []) or [None]
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
                                   diagnostic=one_line(diagnostic), address=addr.decode(errors="replace")))
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
        return_paths += addresses(msg.get_all(name) or [])
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
                    found = addresses(original.get_all("To") or [])
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
    return_paths += VERP_RE.findall(text)
    message_ids += [m.group(0) for m in MESSAGE_ID_RE.finditer(text)]
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


