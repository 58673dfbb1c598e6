"""Subscribers added and changed by another system (a CRM through the API).

Two ways in: `confirm-first` is the signup form's double opt-in (a confirmation is mailed);
`documented` is a consent the caller already holds proof of, recorded as such with who
vouched for it. Either way one row per address, the suppression list applies, and an
address already on the list is answered with its row, not a second one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from ..extensions import db
from ..models import ConsentRecord, Subscriber, SubscriberStatus, email_key, utcnow
from ..suppressions import is_suppressed
from ..webhooks import SUBSCRIBER_CONFIRMED, outbox, payloads
from . import confirmations, fields, subscriptions, welcome

CONSENT_MODES = ("confirm-first", "documented")
PROFILE_LIMITS = {"first_name": 100, "last_name": 100, "postal_code": 20}
PROFILE_FIELDS = (*PROFILE_LIMITS, "phone", "language")
_POSTAL = re.compile(r"^[A-Za-z0-9 \-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ProfileError(ValueError):
    """Fields that cannot be kept as given: {field: message}."""

    def __init__(self, errors: dict[str, str], predicates: frozenset[str] = frozenset()) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.predicates = predicates  # the keys whose message follows the field's name ("is …")


class Suppressed(Exception):
    """The address is on the suppression list (erased, bounced, complained): never added again."""


class UnsubscribedThemselves(Exception):
    """A documented consent for someone who unsubscribed: a CRM's older record never
    overrides the person's own unsubscribe (only their own confirmation brings them back)."""


@dataclass(frozen=True)
class Added:
    subscriber: Subscriber
    created: bool
    confirmation_queued: bool


def clean_profile(values: dict[str, object]) -> dict[str, str | None]:
    """The profile fields given (first_name, last_name, postal_code, phone, language), checked;
    an empty string clears one; a phone number is kept in E.164. ProfileError names every
    field at fault."""
    errors: dict[str, str] = {}
    predicates: set[str] = set()
    out: dict[str, str | None] = {}
    for name, limit in PROFILE_LIMITS.items():
        if name not in values:
            continue
        value = " ".join(str(values[name] or "").split())
        if _CONTROL.search(value):
            errors[name] = _("contains control characters")
            predicates.add(name)
        elif len(value) > limit:
            errors[name] = _("at most %(limit)s characters", limit=limit)
        elif name == "postal_code" and value and not _POSTAL.match(value):
            errors[name] = _("letters, digits, spaces and hyphens only")
        out[name] = value or None
    if "phone" in values:
        phone = " ".join(str(values["phone"] or "").split())
        try:
            out["phone"] = fields.normalize_phone(phone) if phone else None
        except ValueError as exc:
            errors["phone"] = str(exc)
            predicates.add("phone")
    if "language" in values:
        language = str(values["language"] or "").strip() or None
        allowed = current_app.config["LANGUAGES"]
        if language is not None and language not in allowed:
            errors["language"] = _("one of %(choices)s", choices=", ".join(allowed))
        out["language"] = language
    if errors:
        raise ProfileError(errors, frozenset(predicates))
    return out


def add(email: str, profile: dict[str, str | None], *, consent: str, req: subscriptions.Request,
        vouched_by: str, send_welcome: bool = False) -> Added:
    """Add (or find) a subscriber. The caller commits; a confirmation or welcome goes after it.

    `confirm-first` runs the signup form's path (cooldown and all); `documented` confirms at
    once with a consent record whose source names `vouched_by` (the token), and is welcomed
    only with `send_welcome` (as the CSV import: otherwise the welcome is settled as not
    wanted, so the sweep of lost welcomes sends none either). Suppressed
    addresses raise Suppressed, a documented consent for someone who unsubscribed
    UnsubscribedThemselves; an address on the list already keeps its status, and gains
    only the profile fields it had none of.
    """
    if is_suppressed(email):
        raise Suppressed(email)
    existing = db.session.scalar(sa.select(Subscriber).where(Subscriber.email_key == email_key(email)))
    confirmed_now = False  # a documented consent that confirmed them: subscriber.confirmed
    if consent == "confirm-first":
        queued = subscriptions.request_subscription(email, req)
        if queued is not None:
            confirmations.queue(queued)
        sub = existing or db.session.scalar(
            sa.select(Subscriber).where(Subscriber.email_key == email_key(email)))
        assert sub is not None  # just inserted, or found
    else:
        sub = existing or Subscriber(email=email, status=SubscriberStatus.PENDING)
        if existing is None:
            db.session.add(sub)
        if sub.status == SubscriberStatus.UNSUBSCRIBED:
            raise UnsubscribedThemselves(email)
        if sub.status != SubscriberStatus.CONFIRMED:
            confirmed_now = True
            now = utcnow()
            sub.status = SubscriberStatus.CONFIRMED
            sub.confirmed_at = now
            sub.unsubscribed_at = None
            sub.confirm_nonce = None
            sub.pending_profile = None  # what a form typed waited for a link that is dead now
            sub.source = sub.source or req.source
            sub.consents.append(ConsentRecord(
                event="confirm:documented", at=now, ip=req.ip,
                user_agent=(req.user_agent or "")[:512] or None, consent_text_version=None,
                source=vouched_by[:200]))
            if send_welcome:
                db.session.flush()
                welcome.queue(sub.id)
            else:
                sub.welcomed_for = now
        queued = None
    for name, value in profile.items():
        if existing is None or getattr(sub, name) is None:
            setattr(sub, name, value)
    db.session.flush()
    if confirmed_now:
        outbox.emit(SUBSCRIBER_CONFIRMED, payloads.subscriber(sub))
    return Added(sub, existing is None, queued is not None)


def update(sub: Subscriber, profile: dict[str, str | None]) -> Subscriber:
    """Change the profile fields given. The caller commits."""
    for name, value in profile.items():
        setattr(sub, name, value)
    return sub
