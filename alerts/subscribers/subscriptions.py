"""Double opt-in: who may be mailed, and what each visitor action does to a subscriber.

What a signup form asks for besides the address (name, postal code, custom fields) travels
with the signup. It is saved at once only on a subscriber the signup itself creates; for an
address already on the list it is kept pending and saved only when the address's owner
confirms by the emailed link (anyone can type anyone's address, and a stranger's words must
never reach a person's profile, nor their greeting). An address already confirmed is mailed
no link, so what a new signup typed for it is never saved.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext

from .. import i18n, queueing, tasknames, webhooks
from ..extensions import DialectInsert, PerDialect, db
from ..models import (
    ConsentRecord,
    SignupAttempt,
    Subscriber,
    SubscriberStatus,
    email_key,
    new_token_key,
    utcnow,
)
from ..suppressions import is_suppressed
from ..webhooks import outbox, payloads
from . import fields
from .tokens import TokenError, read_confirm_token

# A confirmation link may be waiting for these: a new signup, or a returning one.
AWAITING_CONFIRMATION = (SubscriberStatus.PENDING, SubscriberStatus.UNSUBSCRIBED)

MAX_EMAIL_LENGTH = 254


class InvalidEmail(ValueError):
    pass


def normalize_email(raw: str) -> str:
    """A deliverable-looking ASCII address with a lower-cased domain, or InvalidEmail."""
    if raw is None or not raw.strip():
        raise InvalidEmail(gettext("Please enter your email address."))
    raw = raw.strip()
    if len(raw) > MAX_EMAIL_LENGTH or any(ch in raw for ch in "\r\n\0"):
        raise InvalidEmail(gettext("That doesn't look like an email address."))
    try:
        result = validate_email(raw, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        # (email-validator explains in English only; another language gets the plain sentence)
        plain = gettext("That doesn't look like an email address.")
        raise InvalidEmail(str(exc) if i18n.current() == i18n.default_language() else plain) from exc
    assert result.ascii_email is not None  # allow_smtputf8=False: every valid address has one
    local, _, domain = result.ascii_email.rpartition("@")
    return f"{local}@{domain.lower()}"


@dataclass(frozen=True)
class Request:
    """Where a consent came from; recorded with every event."""

    ip: str | None
    user_agent: str | None
    source: str = "web-form"
    at: datetime | None = None  # when it was asked for (a signup decided later); default now


def _consent(event: str, req: Request) -> dict:
    return {
        "event": event,
        "at": req.at or utcnow(),
        "ip": req.ip,
        "user_agent": (req.user_agent or "")[:512] or None,
        "consent_text_version": current_app.config["CONSENT_TEXT_VERSION"],
        "source": req.source,
    }


def _record(sub: Subscriber, event: str, req: Request) -> None:
    sub.consents.append(ConsentRecord(**_consent(event, req)))


_INSERT_CONSENT = sa.insert(ConsentRecord.__table__)


def _build_insert_pending(insert: DialectInsert) -> sa.Insert:
    table = Subscriber.__table__
    now = sa.bindparam("now", type_=table.c.created_at.type)
    return (
        insert(table)
        .values(email=sa.bindparam("new_email"), email_key=sa.bindparam("key"),
                token_key=sa.bindparam("token_key"), status=SubscriberStatus.PENDING,
                confirm_nonce=sa.bindparam("nonce"), created_at=now, last_confirmation_at=now,
                source=sa.bindparam("source"))
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(table.c.id)
    )


_INSERT_PENDING = PerDialect(_build_insert_pending)


def _insert_new(email: str, req: Request) -> int | None:
    """A new address in two statements: the pending subscriber, with its nonce and its
    cooldown already taken, and the consent record. None when the address is known.

    `INSERT … ON CONFLICT DO NOTHING` also settles racing signups for one address: one
    insert wins, the others see a known address.
    """
    statement = _INSERT_PENDING()
    subscriber_id = db.session.scalar(
        statement, {"new_email": email, "key": email_key(email), "token_key": new_token_key(),
                    "nonce": secrets.token_hex(16), "now": utcnow(), "source": (req.source or None)}
    )
    if subscriber_id is not None:
        db.session.execute(_INSERT_CONSENT, {"subscriber_id": subscriber_id, **_consent("signup", req)})
    return subscriber_id


PROFILE_COLUMNS = ("first_name", "last_name", "postal_code", "phone", "language")


def apply_profile(sub: Subscriber, profile: dict[str, Any] | None) -> None:
    """Save what a signup gave (the values given replace the person's; none is cleared).
    The caller commits."""
    if not profile:
        return
    for name in PROFILE_COLUMNS:
        if profile.get(name):
            setattr(sub, name, profile[name])
    if profile.get("language") and not sub.language:  # the page's language; a choice made since stays
        sub.language = profile["language"]
    custom = {k: list(v) for k, v in (profile.get("fields") or {}).items() if v}
    if custom:
        db.session.flush()
        fields.set_values(sub.id, custom)


def request_subscription(email: str, req: Request, profile: dict[str, Any] | None = None) -> int | None:
    """Record a signup; return the subscriber id to mail a confirmation to, or None.

    The caller commits, then enqueues. None covers every case in which no email may go
    out: already confirmed, suppressed, or the address is in its cooldown (which is what
    stops the form from being used to bomb someone else's inbox). The address is matched
    case-folded (`Victim@x.org` is `victim@x.org`: one row, one cooldown).

    An unsubscribed address stays unsubscribed until its owner confirms: a signup typed
    by anyone else changes nothing but the link that is mailed to it. `profile` (what the
    form asked for) is saved on a subscriber this signup creates, else kept pending until
    the owner confirms (the latest signup's replaces an earlier one's); a confirmed
    address's is dropped.
    """
    if is_suppressed(email):
        return None
    new_id = _insert_new(email, req)
    if new_id is not None:
        if profile:
            new = db.session.get(Subscriber, new_id)
            assert new is not None  # just inserted
            apply_profile(new, profile)
        return new_id
    sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email_key == email_key(email)))
    if sub is None or sub.status == SubscriberStatus.CONFIRMED:
        return None  # (None: erased between the two statements)
    if sub.confirm_nonce is None:
        sub.confirm_nonce = secrets.token_hex(16)
    if profile:
        sub.pending_profile = profile
    _record(sub, "signup", req)
    db.session.flush()
    return sub.id if _claim_cooldown(sub.id) else None


def _claim_cooldown(subscriber_id: int) -> bool:
    """Atomically take the right to send a confirmation now (one per cooldown window)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=current_app.config["CONFIRM_COOLDOWN_SECONDS"])
    result = db.session.execute(
        sa.update(Subscriber)
        .where(
            Subscriber.id == subscriber_id,
            sa.or_(Subscriber.last_confirmation_at.is_(None), Subscriber.last_confirmation_at < cutoff),
        )
        .values(last_confirmation_at=now)
        .execution_options(synchronize_session=False)
    )
    return cast(sa.CursorResult, result).rowcount == 1


def claim_unsent_confirmations(limit: int = 1000) -> list[int]:
    """Pending signups whose confirmation never got queued (the broker was away: the cooldown
    was released then), still young enough for a link to be worth sending; each is claimed
    as if just requested. The sweep queues them, so a signup is not lost to a Redis outage.
    The caller commits, then queues."""
    young = utcnow() - timedelta(seconds=current_app.config["CONFIRM_MAX_AGE_SECONDS"])
    ids = db.session.scalars(
        sa.select(Subscriber.id)
        .where(
            Subscriber.status.in_(AWAITING_CONFIRMATION),
            Subscriber.confirm_nonce.is_not(None),
            Subscriber.last_confirmation_at.is_(None),
            Subscriber.created_at > young,
        )
        .order_by(Subscriber.id)
        .limit(limit)
    ).all()
    return [i for i in ids if _claim_cooldown(i)]


def release_cooldown(subscriber_ids: list[int]) -> None:
    """Give back cooldown slots whose email never got queued, so a retry (or the sweep) sends it.

    Runs after the signup's commit, when the broker refused the task: on its own connection.
    """
    with db.engine.begin() as conn:
        conn.execute(
            sa.update(Subscriber)
            .where(Subscriber.id.in_(subscriber_ids))
            .values(last_confirmation_at=None)
        )


class ConfirmOutcome:
    CONFIRMED = "confirmed"
    ALREADY = "already"  # the link was used before: single use


def _confirming(token: str, *, lock: bool) -> tuple[Subscriber, str | None]:
    """The subscriber a confirmation link names and what pressing its button would do: ALREADY
    (used to confirm) or None (it would confirm); TokenError for a link that cannot count."""
    claim = read_confirm_token(token)
    query = sa.select(Subscriber).where(Subscriber.token_key == claim.token_key)
    sub = db.session.scalar(query.with_for_update() if lock else query)
    if sub is None:
        raise TokenError("invalid")
    if sub.status == SubscriberStatus.CONFIRMED and sub.confirm_nonce is None:
        return sub, ConfirmOutcome.ALREADY
    if sub.status not in AWAITING_CONFIRMATION or sub.confirm_nonce != claim.nonce:
        raise TokenError("used")
    return sub, None


def confirm_state(token: str) -> str | None:
    """What pressing the button would do, read without changing or locking anything."""
    return _confirming(token, lock=False)[1]


def confirm_token_subscriber_id(token: str) -> int | None:
    """The subscriber a (verified) confirmation link names."""
    key = read_confirm_token(token).token_key
    return db.session.scalar(sa.select(Subscriber.id).where(Subscriber.token_key == key))


def pending_profile(token: str) -> dict[str, Any] | None:
    """What a signup typed for this link's address, waiting for its owner's word."""
    try:
        key = read_confirm_token(token).token_key
    except TokenError:
        return None
    return db.session.scalar(sa.select(Subscriber.pending_profile).where(Subscriber.token_key == key))


def confirm(token: str, req: Request, *, save_pending: bool = False) -> str:
    """Confirm the subscriber a token names; raises TokenError for links that can't count.

    `save_pending`: the owner ticked to keep what a signup typed for their address (shown to
    them on the confirmation page); either way it is no longer kept pending."""
    sub, already = _confirming(token, lock=True)
    if already:
        return already
    if is_suppressed(sub.email):
        raise TokenError("invalid")
    if save_pending:
        apply_profile(sub, sub.pending_profile)
    sub.pending_profile = None
    sub.status = SubscriberStatus.CONFIRMED
    sub.confirmed_at = utcnow()
    sub.confirm_nonce = None
    _record(sub, "confirm", req)
    outbox.emit(webhooks.SUBSCRIBER_CONFIRMED, payloads.subscriber(sub))
    # Into the journeys of new subscribers ("New subscribers": the welcome, then its series).
    queueing.after_commit(tasknames.ENTER_JOURNEYS, "confirmed", [sub.id])
    return ConfirmOutcome.CONFIRMED


def unsubscribe(subscriber_id: int, req: Request, *, via: str = "link") -> Subscriber | None:
    """Takes effect at once; idempotent; the consent history stays as proof.

    The record's source is the channel it came through (`req.source`: link, one-click, a
    list-unsubscribe email, a complaint…), never where the person once signed up."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None:
        return None
    if sub.status != SubscriberStatus.UNSUBSCRIBED:
        sub.status = SubscriberStatus.UNSUBSCRIBED
        sub.unsubscribed_at = datetime.now(UTC)
        sub.confirm_nonce = None
        sub.pending_profile = None  # its confirmation links are dead: nothing can save it now
        _record(sub, f"unsubscribe:{via}", req)
        outbox.emit(webhooks.SUBSCRIBER_UNSUBSCRIBED, payloads.subscriber(sub, via=via))
    return sub


# -- signups as received, decided later -------------------------------------------------


# Built once, on the table (not the ORM entity, whose bulk-insert path costs more than the
# statement): building and keying the statement per signup cost more than running it.
_ATTEMPTS = SignupAttempt.__table__
_INSERT_ATTEMPT = sa.insert(_ATTEMPTS).returning(_ATTEMPTS.c.id)


def record_attempt(email: str, req: Request, profile: dict[str, Any] | None = None) -> int:
    """What `POST /subscribe` does for every valid address, whatever its state: one INSERT
    (with what the form asked for besides the address, checked already).

    Nothing about the address is read here, so no branch answers faster than another;
    `take_attempt` (in a task) decides. The caller commits, then queues.
    """
    return db.session.execute(_INSERT_ATTEMPT, {
        "email": email, "at": utcnow(), "ip": req.ip, "user_agent": (req.user_agent or "")[:512] or None,
        "source": req.source, "profile": profile or None,
    }).scalar_one()


def take_attempt(attempt_id: int) -> int | None:
    """Apply one recorded signup (once: the row is deleted as it is read); the subscriber to
    mail a confirmation to, or None. The caller commits, then queues."""
    row = db.session.execute(
        sa.delete(SignupAttempt)
        .where(SignupAttempt.id == attempt_id)
        .returning(SignupAttempt.email, SignupAttempt.ip, SignupAttempt.user_agent,
                   SignupAttempt.source, SignupAttempt.at, SignupAttempt.profile)
    ).first()
    if row is None:
        return None  # taken already (a retried task, or the sweep got there first)
    return request_subscription(
        row.email, Request(ip=row.ip, user_agent=row.user_agent, source=row.source, at=row.at),
        row.profile,
    )


def stale_attempts(older_than_seconds: int, limit: int = 1000) -> list[int]:
    """Signups whose task never ran (the broker was away when they came): for the sweep."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    return list(db.session.scalars(
        sa.select(SignupAttempt.id).where(SignupAttempt.at < cutoff).order_by(SignupAttempt.id).limit(limit)
    ))
