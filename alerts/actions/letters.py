"""Letters to decision-makers: each counted signature of a letter action becomes one delivery
per target, sent from the organisation's domain on the signer's behalf.

A delivery row (`LetterDelivery`, unique per signature and target) is made when the signature
counts: at once when it needs no confirmation (or an alert's reference proves the address),
else when its confirmation link is pressed. Placeholder targets get none. Rows are sent by
`send_due` (a Celery task after the commit, and beat every LETTER_SWEEP_SECONDS), which claims
due rows with a lease; a worker killed mid-send leaves its rows to the next claim once the lease
runs out, so a letter is sent twice only when the relay took it and the worker died before its
commit (the window SMTP itself cannot close).

`LETTER_DELIVERY=each` sends one message per letter; `digest` collects a target's letters into
one message a day at LETTER_DIGEST_HOUR (ORG_TIMEZONE). From is "Signer via ORG_NAME" at
MAIL_FROM's address (so the DKIM signature's domain is the From domain: DMARC aligns), Reply-To
the signer (a single letter; a digest lists the signers' addresses instead). A 5xx at RCPT
marks the delivery failed with the relay's words; a bounce report for its VERP return path
(`bounces+l<id>-…`) marks it bounced; a 4xx is tried again later, paced like every send to
that relay.
"""

from __future__ import annotations

import html
import logging
import smtplib
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from flask import current_app

from .. import queueing, suppressions, tasknames
from ..extensions import db
from ..mail import pacing, smtp
from ..mail.dkim import signer_for
from ..mail.mime import build_message, domain_of, encode_header
from ..mail.pacer import Pacer
from ..mail.signed_ids import return_path
from ..models import Action, ActionTarget, LetterDelivery, Signature, utcnow
from ..models.actions import ERASED

log = logging.getLogger(__name__)

QUEUED, SENDING, SENT, FAILED, BOUNCED = "queued", "sending", "sent", "failed", "bounced"
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
# After the n-th passing failure, wait this long (then the last, until MAX_ATTEMPTS).
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2),
           timedelta(hours=6))
CLAIM = 200  # rows claimed at once


# -- making deliveries ---------------------------------------------------------------------


def next_digest_time(now: datetime | None = None) -> datetime:
    """The next LETTER_DIGEST_HOUR o'clock in ORG_TIMEZONE, as UTC."""
    cfg = current_app.config
    now = now or utcnow()
    zone = ZoneInfo(cfg["ORG_TIMEZONE"])
    local = now.astimezone(zone)
    due = local.replace(hour=cfg["LETTER_DIGEST_HOUR"], minute=0, second=0, microsecond=0)
    if due <= local:
        due += timedelta(days=1)
    return due.astimezone(now.tzinfo)


def on_counted(signature_id: int, action_id: int) -> int:
    """The signature now counts: one delivery per real target (none twice), queued to send
    after the commit. Returns how many were made. The caller commits."""
    kind = db.session.scalar(sa.select(Action.kind).where(Action.id == action_id))
    if kind != "letter":
        return 0
    targets = db.session.scalars(sa.select(ActionTarget.id).where(
        ActionTarget.action_id == action_id, ActionTarget.placeholder.is_(False),
        ActionTarget.email.is_not(None))).all()
    email = db.session.scalar(sa.select(Signature.email).where(Signature.id == signature_id))
    if not targets or email == ERASED:
        return 0
    have = set(db.session.scalars(sa.select(LetterDelivery.target_id)
                                  .where(LetterDelivery.signature_id == signature_id)))
    now = utcnow()
    digest = current_app.config["LETTER_DELIVERY"] == "digest"
    due = next_digest_time(now) if digest else now
    made = 0
    for target_id in targets:
        if target_id in have:
            continue
        db.session.add(LetterDelivery(signature_id=signature_id, target_id=target_id, status=QUEUED,
                                      due_at=due, attempts=0, created_at=now))
        made += 1
    if made:
        db.session.flush()
        if not digest:
            queueing.after_commit(tasknames.SEND_LETTERS)
    return made


def release_placeholders(action_id: int) -> int:
    """After staff replace placeholder targets: the counted signatures' letters to the real
    ones (those made before had none). The caller commits."""
    ids = db.session.scalars(sa.select(Signature.id).where(
        Signature.action_id == action_id, Signature.confirmed_at.is_not(None),
        Signature.email != ERASED)).all()
    return sum(on_counted(signature_id, action_id) for signature_id in ids)


def _drop_erased(ids: list[int]) -> list[int]:
    """Claimed letters whose signer has been erased since are not sent (they would carry no
    name and no address); the rest."""
    erased = set(db.session.scalars(
        sa.select(LetterDelivery.id).join(Signature, Signature.id == LetterDelivery.signature_id)
        .where(LetterDelivery.id.in_(ids), Signature.email == ERASED)))
    if erased:
        _finish(sorted(erased), {"status": FAILED, "lease_until": None,
                                 "smtp_reply": "not sent: the signer's data was erased"})
    return [i for i in ids if i not in erased]


# -- claiming and sending ------------------------------------------------------------------


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.or_(
        sa.and_(LetterDelivery.status == QUEUED, LetterDelivery.due_at <= now),
        sa.and_(LetterDelivery.status == SENDING, LetterDelivery.lease_until < now),
    )


def claim(limit: int = CLAIM, now: datetime | None = None) -> list[int]:
    """Take up to `limit` due deliveries (queued and due, or whose lease ran out) for this
    worker: one UPDATE whose WHERE is checked again row by row, so two workers never hold the
    same row. The caller commits at once."""
    now = now or utcnow()
    pick = (sa.select(LetterDelivery.id).where(_due(now))
            .order_by(LetterDelivery.target_id, LetterDelivery.id).limit(limit))
    if db.engine.dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    ids = list(db.session.scalars(pick))
    if not ids:
        return []
    claimed = db.session.scalars(
        sa.update(LetterDelivery).where(LetterDelivery.id.in_(ids), _due(now))
        .values(status=SENDING, lease_until=now + LEASE, attempts=LetterDelivery.attempts + 1)
        .returning(LetterDelivery.id)).all()
    return sorted(claimed)


@dataclass(frozen=True)
class Letter:
    """One signer's letter, as it is written into a message."""

    delivery_id: int
    signer_name: str
    signer_email: str
    postal_code: str | None
    own_words: str | None


@dataclass(frozen=True)
class Message:
    """One message to one target: a letter, or a digest of several."""

    target: ActionTarget
    action: Action
    letters: tuple[Letter, ...]


def _messages(ids: list[int]) -> list[Message]:
    rows = db.session.execute(
        sa.select(LetterDelivery.id, LetterDelivery.target_id, Signature.name, Signature.email,
                  Signature.postal_code, Signature.comment, Signature.action_id)
        .join(Signature, Signature.id == LetterDelivery.signature_id)
        .where(LetterDelivery.id.in_(ids)).order_by(LetterDelivery.id)).all()
    targets = {t.id: t for t in db.session.scalars(
        sa.select(ActionTarget).where(ActionTarget.id.in_({r.target_id for r in rows})))}
    actions = {a.id: a for a in db.session.scalars(
        sa.select(Action).where(Action.id.in_({r.action_id for r in rows})))}
    digest = current_app.config["LETTER_DELIVERY"] == "digest"
    groups: dict[int, list[Letter]] = defaultdict(list)
    out: list[Message] = []
    for row in rows:
        letter = Letter(row.id, row.name, row.email, row.postal_code, row.comment)
        target = targets[row.target_id]
        if digest:
            groups[row.target_id].append(letter)
        else:
            out.append(Message(target, actions[target.action_id], (letter,)))
    for target_id, letters in groups.items():
        target = targets[target_id]
        out.append(Message(target, actions[target.action_id], tuple(letters)))
    return out


def _one_line(text: str) -> str:
    return " ".join((text or "").split())


def _letter_text(action: Action, target: ActionTarget, letter: Letter) -> str:
    parts = [f"Dear {_one_line(target.name)},", (action.letter_text or "").strip()]
    if action.allow_comments and (letter.own_words or "").strip():
        parts.append(letter.own_words.strip())  # type: ignore[union-attr]
    sign_off = "Sincerely,\n" + _one_line(letter.signer_name)
    if letter.postal_code:
        sign_off += f"\n{_one_line(letter.postal_code)}"
    parts.append(sign_off)
    return "\n\n".join(parts)


def message_text(message: Message) -> str:
    """The plain text: the letter (or each letter of the digest), then who sent it and how."""
    org = current_app.config["ORG_NAME"]
    action, target = message.action, message.target
    if len(message.letters) == 1:
        letter = message.letters[0]
        return (f"{_letter_text(action, target, letter)}\n\n-- \n"
                f"{_one_line(letter.signer_name)} <{letter.signer_email}> sent this letter through "
                f"{org}'s Action Center. Reply to this email to answer them.\n")
    head = (f"{len(message.letters)} people wrote to you today through {org}'s Action Center "
            f"about “{_one_line(action.letter_subject or action.title)}”. Each letter follows, "
            f"with its writer's address for your reply.\n")
    pieces = [head]
    for n, letter in enumerate(message.letters, start=1):
        pieces.append(f"\n---- Letter {n} of {len(message.letters)}: {_one_line(letter.signer_name)} "
                      f"<{letter.signer_email}> ----\n\n{_letter_text(action, target, letter)}\n")
    return "".join(pieces)


def message_html(message: Message) -> str:
    text = message_text(message)
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>" for p in text.split("\n\n")
                         if p.strip())
    style = "font-family:sans-serif;line-height:1.5"
    return f'<!doctype html><html lang="en"><body style="{style}">{paragraphs}</body></html>'


def _from_header(display: str, address: str) -> str:
    """`"Name via Org" <address>`, the name encoded where needed and never breaking a line."""
    display = _one_line(display)[:150]
    if display.isascii() and "=?" not in display:
        return formataddr((display, address))
    return f"{encode_header(display)} <{address}>"


def message_bytes(message: Message) -> bytes:
    """The DKIM-signed message for one target: From the organisation's address on the signer's
    behalf, Reply-To the signer (or, in a digest, no single one)."""
    cfg = current_app.config
    address = parseaddr(cfg["MAIL_FROM"])[1]
    org = _one_line(cfg["ORG_NAME"])
    action = message.action
    subject = _one_line(action.letter_subject or action.title)
    headers: list[tuple[str, str]] = [("Content-Language", "en")]
    if len(message.letters) == 1:
        letter = message.letters[0]
        from_header = _from_header(f"{letter.signer_name or letter.signer_email} via {org}", address)
        headers.append(("Reply-To", _from_header(letter.signer_name, letter.signer_email)))
    else:
        from_header = _from_header(f"{org} Action Center", address)
        subject = f"{len(message.letters)} letters: {subject}"
    data = build_message(
        from_header=from_header, to=formataddr((_one_line(message.target.name), message.target.email or "")),
        subject=subject, text=message_text(message), html=message_html(message),
        message_id=message_id_for(message.letters[0].delivery_id, domain_of(cfg["MAIL_FROM"])),
        extra_headers=headers)
    return signer_for(current_app).sign(data)


def message_id_for(delivery_id: int, domain: str) -> str:
    """Stable per (first) delivery: a resend after a crash carries the same Message-ID."""
    return f"<letter.{delivery_id}@{domain}>"


@dataclass
class Result:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    messages: int = 0


def _finish(ids: list[int], values: dict) -> None:
    db.session.execute(sa.update(LetterDelivery).where(LetterDelivery.id.in_(ids),
                                                       LetterDelivery.status == SENDING).values(**values))


def _retry_later(ids: list[int], reply: str) -> int:
    """Back to the queue with a growing wait; given up (failed) after MAX_ATTEMPTS."""
    now = utcnow()
    rows = db.session.execute(sa.select(LetterDelivery.id, LetterDelivery.attempts)
                              .where(LetterDelivery.id.in_(ids))).all()
    for row in rows:
        if row.attempts >= MAX_ATTEMPTS:
            _finish([row.id], {"status": FAILED, "smtp_reply": reply[:500], "lease_until": None})
        else:
            wait = BACKOFF[min(row.attempts, len(BACKOFF)) - 1]
            _finish([row.id], {"status": QUEUED, "due_at": now + wait, "smtp_reply": reply[:500],
                               "lease_until": None})
    return len(rows)


def send_due(deadline_seconds: float = 50.0) -> Result:
    """Claim and send due letters until none are left or the deadline passes (what the task
    and beat run). Commits after each message, so what the relay took stays recorded."""
    cfg = current_app.config
    result = Result()
    started = time.monotonic()
    relays = sorted(smtp.parse_relays(cfg["SMTP_URL"]), key=lambda r: r.priority)
    relay = relays[0]
    pacer = Pacer(pacing.for_url(cfg.get("REDIS_URL")), relay.name,
                  pacing.Limits(relay.max_rate or cfg["SMTP_MAX_RATE"], relay.max_connections))
    while time.monotonic() - started < deadline_seconds:
        ids = claim()
        db.session.commit()
        if not ids:
            break
        messages = _messages(_drop_erased(ids))
        db.session.commit()
        for n, message in enumerate(messages):
            if time.monotonic() - started >= deadline_seconds:
                # Out of time: what is claimed and unsent goes back at once, not after the lease.
                rest = [lt.delivery_id for m in messages[n:] for lt in m.letters]
                _finish(rest, {"status": QUEUED, "lease_until": None})
                db.session.commit()
                break
            _send_one(message, pacer, result)
            db.session.commit()
    pacer.flush()
    return result


def _send_one(message: Message, pacer: Pacer, result: Result) -> None:
    cfg = current_app.config
    ids = [letter.delivery_id for letter in message.letters]
    result.messages += 1
    to = message.target.email or ""
    if suppressions.is_suppressed(to):
        _finish(ids, {"status": FAILED, "smtp_reply": "not sent: the address is on the suppression list",
                      "lease_until": None})
        result.failed += len(ids)
        return
    data = message_bytes(message)
    pacer.take()
    try:
        smtp.send_one(cfg["SMTP_URL"], return_path("l", ids[0]), to, data, cfg["SMTP_TIMEOUT"])
    except (OSError, smtplib.SMTPException) as exc:
        refusal = smtp.refusal(exc)
        if refusal.throttled:
            pacer.push_back(refusal.detail)
        if refusal.permanent and refusal.at_recipient:
            _finish(ids, {"status": FAILED, "smtp_reply": refusal.detail[:500], "lease_until": None})
            result.failed += len(ids)
            log.warning("letter to target %s refused: %s", message.target.id, refusal.detail)
        else:
            result.retried += _retry_later(ids, refusal.detail)
            log.info("letter to target %s to be tried again: %s", message.target.id, refusal.detail)
        return
    pacer.ok()
    _finish(ids, {"status": SENT, "sent_at": utcnow(), "smtp_reply": "250 accepted",
                  "message_id": message_id_for(ids[0], domain_of(cfg["MAIL_FROM"])), "lease_until": None})
    result.sent += len(ids)


def bounced(delivery_id: int, detail: str) -> int:
    """A bounce report names this delivery's message: it and the rest of its digest bounced.
    The caller commits."""
    row = db.session.get(LetterDelivery, delivery_id)
    if row is None:
        return 0
    query = sa.update(LetterDelivery).where(LetterDelivery.status.in_((SENT, SENDING)))
    if row.message_id:
        query = query.where(LetterDelivery.message_id == row.message_id)
    else:
        query = query.where(LetterDelivery.id == delivery_id)
    result = db.session.execute(query.values(status=BOUNCED, smtp_reply=detail[:500]))
    return int(getattr(result, "rowcount", 0) or 0)


# -- what staff and signers see ------------------------------------------------------------


@dataclass(frozen=True)
class TargetFigures:
    target: ActionTarget
    sent: int
    waiting: int
    failed: int
    bounced: int
    last_at: datetime | None
    last_status: str | None
    last_reply: str | None


def figures(action_id: int) -> list[TargetFigures]:
    """Per target: letters sent, waiting, refused, bounced; the last delivery and its reply."""
    targets = db.session.scalars(sa.select(ActionTarget).where(ActionTarget.action_id == action_id)
                                 .order_by(ActionTarget.position, ActionTarget.id)).all()
    counts: dict[tuple[int, str], int] = {
        (r.target_id, r.status): r.n for r in db.session.execute(
            sa.select(LetterDelivery.target_id, LetterDelivery.status, sa.func.count().label("n"))
            .join(ActionTarget, ActionTarget.id == LetterDelivery.target_id)
            .where(ActionTarget.action_id == action_id)
            .group_by(LetterDelivery.target_id, LetterDelivery.status))}
    out = []
    for target in targets:
        last = db.session.execute(
            sa.select(LetterDelivery.status, LetterDelivery.smtp_reply,
                      sa.func.coalesce(LetterDelivery.sent_at, LetterDelivery.created_at).label("at"))
            .where(LetterDelivery.target_id == target.id, LetterDelivery.status != QUEUED)
            .order_by(LetterDelivery.id.desc()).limit(1)).first()
        out.append(TargetFigures(
            target, counts.get((target.id, SENT), 0),
            counts.get((target.id, QUEUED), 0) + counts.get((target.id, SENDING), 0),
            counts.get((target.id, FAILED), 0), counts.get((target.id, BOUNCED), 0),
            last.at if last else None, last.status if last else None, last.smtp_reply if last else None))
    return out


def sent_count(action_id: int) -> int:
    """Letters sent for this action (one per signer and target)."""
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(LetterDelivery)
        .join(ActionTarget, ActionTarget.id == LetterDelivery.target_id)
        .where(ActionTarget.action_id == action_id, LetterDelivery.status == SENT)) or 0
