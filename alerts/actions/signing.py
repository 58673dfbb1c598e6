"""Signing an action: who signs (typed, or named by an alert's reference), attribution, counts.

One signature per (action, case-folded address), settled by the unique key with
`INSERT … ON CONFLICT DO NOTHING`: signing twice, or two racing presses, leave one row and
answer the same. A signature counts at once (`confirmed_at` set) unless the action asks for
confirmation; then it is flagged until its address confirms through an emailed link, except
when an alert's reference proves the address already. Joining the list ("Also send me action
alerts") goes through the normal double opt-in, never silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app, has_request_context, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import i18n, queueing, tasknames, webhooks
from ..extensions import DialectInsert, PerDialect, db
from ..mail.context import external_url, org_context
from ..mail.rendering import compiled
from ..mail.signed_ids import envelope_sender
from ..models import Action, Delivery, Signature, Subscriber, utcnow
from ..models import email_key as subscriber_key
from ..models.actions import ERASED
from ..subscribers import confirmations, emails, signup_form, subscriptions
from ..webhooks import outbox
from . import letters
from .catalog import text_of
from .references import read_reference

SIGNATURE_CONFIRM_SALT = "alerts.signature-confirm.v1"
SIGNATURE_CONFIRM_MAX_AGE = 7 * 24 * 3600
NAME_MAX, POSTAL_MAX, COMMENT_MAX = 200, 20, 2000
_POSTAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]{0,19}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Where a signature came from (Signature.source); reports and audiences read these.
ALERT, ACTION_CENTER, SHARE, DIRECT, IMPORT = "alert", "action-center", "share", "direct", "import"
EMBED = "embed"  # signed through the form embedded on another site (/embed/actions/<slug>)
PAGE_SOURCES = {"action-center": ACTION_CENTER, "share": SHARE}


class SignError(ValueError):
    """Input that cannot be signed with; `field` is the form field to point at."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class ActionClosed(Exception):
    """The action takes no signatures (closed, or hosted elsewhere)."""


def email_key(email: str) -> str:
    """One signature per address whatever its case: the key the unique constraint holds."""
    return email.strip().casefold()


def mask(email: str) -> str:
    """a…@example.org: enough for a person to recognise their address, not to learn one."""
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}…@{domain}"


@dataclass(frozen=True)
class Signer:
    """Whom an alert's reference names. Only `masked` is ever shown."""

    delivery_id: int
    alert_id: int
    subscriber_id: int
    email: str
    name: str
    postal_code: str | None

    @property
    def masked(self) -> str:
        return mask(self.email)


def signer_for(token: str | None) -> Signer | None:
    """The subscriber a reference names, with what they gave on an earlier signature; None when
    the reference is bad or its subscriber was erased."""
    ref = read_reference(token)
    if ref is None:
        return None
    row = db.session.execute(
        sa.select(Delivery.alert_id, Subscriber.id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.id == ref.delivery_id)
    ).first()
    if row is None:
        return None
    alert_id, subscriber_id, email = row
    last = db.session.execute(
        sa.select(Signature.name, Signature.postal_code)
        .where(sa.or_(Signature.subscriber_id == subscriber_id, Signature.email_key == email_key(email)),
               Signature.name != "")
        .order_by(Signature.created_at.desc(), Signature.id.desc())
        .limit(1)
    ).first()
    return Signer(ref.delivery_id, alert_id, subscriber_id, email,
                  last.name if last else "", last.postal_code if last else None)


@dataclass(frozen=True)
class Attribution:
    source: str
    alert_id: int | None = None
    delivery_id: int | None = None
    source_code: str | None = None  # the `?source=` code, already cleaned (embeds.sources)


def attribution(signer: Signer | None, *, page_source: str | None, alert_id: int | None = None,
                email: str | None = None, source_code: str | None = None) -> Attribution:
    """Where a signature came from. With a reference: the alert and, unless TRACK_CLICKS=off,
    the delivery. A forwarded alert's reader who signs as themselves: a share of that alert."""
    track = current_app.config.get("TRACK_CLICKS") != "off"
    if signer is not None and (email is None or email_key(email) == email_key(signer.email)):
        return Attribution(ALERT, signer.alert_id, signer.delivery_id if track else None, source_code)
    if signer is not None:
        return Attribution(SHARE, signer.alert_id, None, source_code)
    return Attribution(PAGE_SOURCES.get(page_source or "", DIRECT), alert_id, None, source_code)


@dataclass
class Entry:
    """What the form gave (every field as typed; `email` ignored when a reference signs)."""

    name: str = ""
    email: str = ""
    postal_code: str = ""
    comment: str = ""
    opt_in: bool = False
    language: str | None = None  # the page's language (i18n.known), kept if the signer joins the list


@dataclass(frozen=True)
class Outcome:
    signature_id: int
    new: bool
    counted: bool  # False: flagged until the address confirms


def _clean_text(value: str | None, limit: int, field: str, label: object) -> str:
    """(`label` lazy: translated only for an error, not on every signature.)"""
    value = " ".join((value or "").split())
    if _CONTROL.search(value):
        raise SignError(field, _("%(label)s contains characters we can't accept.", label=label))
    if len(value) > limit:
        raise SignError(field, _("%(label)s is too long (at most %(limit)s characters).",
                                 label=label, limit=limit))
    return value


def validate(action: Action | sa.Row, entry: Entry,
             signer: Signer | None) -> tuple[str, str, str | None, str | None]:
    """(email, name, postal code, comment) or SignError naming the first field at fault."""
    name = _clean_text(entry.name, NAME_MAX, "name", _l("Your name"))
    if signer is not None:
        email = signer.email
        name = name or signer.name
    else:
        try:
            email = subscriptions.normalize_email(entry.email)
        except subscriptions.InvalidEmail as exc:
            raise SignError("email", signup_form.email_message(exc)) from exc
    if not name:
        raise SignError("name", _("Please enter your name."))
    postal = _clean_text(entry.postal_code, POSTAL_MAX, "postal_code", _l("The postal code"))
    if postal and not _POSTAL.match(postal):
        raise SignError("postal_code", _("A postal code has letters, digits, spaces and hyphens only."))
    if not postal and signer is not None:
        postal = signer.postal_code or ""
    comment = None
    if action.allow_comments:
        raw = (entry.comment or "").strip()
        if len(raw) > COMMENT_MAX:
            raise SignError("comment", _("The comment is too long (at most %(limit)s characters).",
                                         limit=COMMENT_MAX))
        comment = raw or None
    return email, name, postal or None, comment


# The signing path's statements are built once, on the tables: building an ORM statement per
# request, and keying it for SQLAlchemy's compiled cache, costs more than executing it.
_A = Action.__table__
_SIGNABLE = sa.select(_A.c.id, _A.c.slug, _A.c.is_open, _A.c.url, _A.c.allow_comments,
                      _A.c.requires_confirmation, _A.c.kind).where(_A.c.slug == sa.bindparam("slug"))
_S = Signature.__table__
_EXISTING = sa.select(_S.c.id, _S.c.confirmed_at).where(
    _S.c.action_id == sa.bindparam("action_id"), _S.c.email_key == sa.bindparam("email_key"))


def signable(slug: str) -> sa.Row | None:
    """What signing needs to know of an action (a Row with Action's attribute names), or None."""
    return db.session.execute(_SIGNABLE, {"slug": slug}).first()


def _build_insert_signature(insert: DialectInsert) -> sa.Insert:
    subscriber = Subscriber.__table__
    now = sa.bindparam("now", type_=_S.c.created_at.type)
    return (
        insert(_S)
        .values(action_id=sa.bindparam("action_id"), email=sa.bindparam("email"),
                email_key=sa.bindparam("email_key"), name=sa.bindparam("name"),
                postal_code=sa.bindparam("postal_code"), comment=sa.bindparam("comment"),
                source=sa.bindparam("source"), source_code=sa.bindparam("source_code"),
                alert_id=sa.bindparam("alert_id"), delivery_id=sa.bindparam("delivery_id"), created_at=now,
                confirmed_at=sa.bindparam("confirmed_at", type_=_S.c.confirmed_at.type),
                # The signer's subscriber, if the address is on the list: in the same statement.
                subscriber_id=sa.select(subscriber.c.id)
                .where(subscriber.c.email_key == sa.bindparam("email_key")).scalar_subquery())
        .on_conflict_do_nothing(index_elements=["action_id", "email_key"])
        .returning(_S.c.id)
    )


_INSERT_SIGNATURE = PerDialect(_build_insert_signature)


def split_name(name: str) -> tuple[str | None, str | None]:
    """A signature's one name as (first, last): the last word is the last name when there are
    two or more ("Ana María García" is "Ana María" and "García"); one word is a first name."""
    words = name.split()
    if not words:
        return None, None
    if len(words) == 1:
        return words[0][:100], None
    return " ".join(words[:-1])[:100].rstrip(), words[-1][:100]


_SUB = Subscriber.__table__


def _filled(column: sa.Column, param: str) -> sa.ColumnElement:
    return sa.func.coalesce(sa.func.nullif(column, ""), sa.bindparam(param, type_=column.type))


# A verified signer's name and postal code fill their subscriber's where empty, never over
# what the person gave; the WHERE makes it a no-op when nothing is missing.
_FILL_PROFILE = (
    sa.update(_SUB)
    .where(sa.or_(_SUB.c.first_name.is_(None), _SUB.c.first_name == "", _SUB.c.last_name.is_(None),
                  _SUB.c.last_name == "", _SUB.c.postal_code.is_(None), _SUB.c.postal_code == ""))
    .values(first_name=_filled(_SUB.c.first_name, "fill_first"),
            last_name=_filled(_SUB.c.last_name, "fill_last"),
            postal_code=_filled(_SUB.c.postal_code, "fill_postal"))
    .execution_options(synchronize_session=False)
)
_FILL_BY_ID = _FILL_PROFILE.where(_SUB.c.id == sa.bindparam("fill_id"))
_FILL_BY_KEY = _FILL_PROFILE.where(_SUB.c.email_key == sa.bindparam("fill_key"))


def fill_profile(name: str, postal_code: str | None, *, subscriber_id: int | None = None,
                 email: str | None = None) -> None:
    """Fill the empty name and postal code of the subscriber a verified signature is from (by
    id, or by address); never overwrites. Only for a signature whose address is proven (an
    alert's reference, or its confirmation link): anyone can type anyone's address."""
    first, last = split_name(name or "")
    if first is None and not postal_code:
        return
    values = {"fill_first": first, "fill_last": last, "fill_postal": postal_code or None}
    if subscriber_id is not None:
        db.session.execute(_FILL_BY_ID, {**values, "fill_id": subscriber_id})
    else:
        db.session.execute(_FILL_BY_KEY, {**values, "fill_key": subscriber_key(email or "")})


def sign(action: Action | sa.Row, entry: Entry, *, signer: Signer | None, where: Attribution,
         request: subscriptions.Request) -> Outcome:
    """Record one signature (or find the one already there). The caller commits.

    `action` is an Action or the Row `signable` gives. Raises ActionClosed for an action that
    takes none, SignError for bad input; queues the signature's confirmation email and the
    list's double opt-in after the commit.
    """
    if not action.is_open or action.url:
        raise ActionClosed(action.slug)
    email, name, postal, comment = validate(action, entry, signer)
    key = email_key(email)
    proven = signer is not None and key == email_key(signer.email)
    now = utcnow()
    counted = proven or not action.requires_confirmation
    new_id = db.session.scalar(_INSERT_SIGNATURE(), {
        "action_id": action.id, "email": email, "email_key": key, "name": name, "postal_code": postal,
        "comment": comment, "source": where.source, "source_code": where.source_code,
        "alert_id": where.alert_id,
        "delivery_id": where.delivery_id, "now": now, "confirmed_at": now if counted else None,
    })
    if new_id is None:
        existing = db.session.execute(_EXISTING, {"action_id": action.id, "email_key": key}).one()
        signature_id, counted = existing.id, existing.confirmed_at is not None
        if not counted and proven:  # the alert's reference proves the address it was sent to
            db.session.execute(sa.update(Signature).where(Signature.id == signature_id)
                               .values(confirmed_at=now))
            counted = True
    else:
        signature_id = new_id
        if not counted:
            queue_confirmation(signature_id, page_language())
        outbox.emit(webhooks.SIGNATURE_CREATED, signature_event(
            signature_id, action, email=email, name=name, postal_code=postal, comment=comment,
            source=where.source, alert_id=where.alert_id, confirmed=counted, created_at=now,
            source_code=where.source_code))
    if counted and action.kind == "letter":  # the letter goes to its targets once it counts
        letters.on_counted(signature_id, action.id)
    if counted and (new_id is not None or proven):
        journeys_on_counted(signature_id)
    if proven:
        assert signer is not None
        fill_profile(name, postal, subscriber_id=signer.subscriber_id)
    if entry.opt_in:
        first, last = split_name(name)
        given = (("first_name", first), ("last_name", last), ("postal_code", postal),
                 ("language", entry.language))
        profile = {k: v for k, v in given if v}
        join_list(email, request, action, source_code=where.source_code, profile=profile)
    return Outcome(signature_id, new_id is not None, counted)


def signature_event(signature_id: int, action: Action | sa.Row, *, email: str, name: str,
                    postal_code: str | None, comment: str | None, source: str, alert_id: int | None,
                    confirmed: bool, created_at: datetime, source_code: str | None = None) -> dict[str, Any]:
    """`signature.created`'s data, one shape for a page's signature and an import's."""
    return {"id": signature_id, "action": {"id": action.id, "slug": action.slug}, "email": email,
            "name": name, "postal_code": postal_code, "comment": comment, "source": source,
            "source_code": source_code, "alert_id": alert_id, "confirmed": confirmed,
            "created_at": created_at}


def page_language() -> str | None:
    """The language of the page being signed on; None off a translated page (the API, an import)."""
    if not has_request_context() or (request.blueprint or "").split(".", 1)[0] in i18n.UNTRANSLATED:
        return None
    return i18n.current()


def queue_confirmation(signature_id: int, language: str | None = None) -> None:
    """Mail the confirmation link (in `language`, the page's) once the signature commits; if the
    broker is away, the signature is flagged and the sweep queues it (`claim_unqueued_confirmations`),
    in the signer's language as a subscriber."""
    args = (signature_id, language) if language else (signature_id,)
    queueing.after_commit(tasknames.SEND_SIGNATURE_CONFIRMATION, *args,
                          on_broker_down=lambda: _flag_unqueued(signature_id))


def _flag_unqueued(signature_id: int) -> None:
    """Runs after the signature's commit, when the broker refused the task: on its own connection."""
    with db.engine.begin() as conn:
        conn.execute(sa.update(Signature).where(Signature.id == signature_id)
                     .values(confirmation_unqueued=True))


def claim_unqueued_confirmations(limit: int = 1000) -> list[int]:
    """Flagged signatures still waiting for their confirmation, each claimed once (one
    conditional UPDATE: two sweeps never queue the same one). The caller commits, then queues."""
    ids = db.session.scalars(
        sa.select(Signature.id).where(Signature.confirmation_unqueued).order_by(Signature.id).limit(limit)
    ).all()
    if not ids:
        return []
    return sorted(db.session.scalars(
        sa.update(Signature)
        .where(Signature.id.in_(ids), Signature.confirmation_unqueued)
        .values(confirmation_unqueued=False)
        .returning(Signature.id)
        .execution_options(synchronize_session=False)
    ).all())


def join_list(email: str, request: subscriptions.Request, action: Action | sa.Row, *,
              source_code: str | None = None, profile: dict[str, str] | None = None) -> None:
    """"Also send me action alerts": the normal double opt-in, sourced to the form's source
    code if it had one, else to this action (`action:<slug>`).

    Recorded and decided later, as `POST /subscribe` is, so the answer says nothing about the
    address's state (no timing either); the signature's name and postal code go with it, as
    the signup form's do (saved on a new subscriber, pending the owner's word on a known one)."""
    req = subscriptions.Request(ip=request.ip, user_agent=request.user_agent,
                                source=source_code or f"action:{action.slug}"[:200])
    confirmations.queue_signup(subscriptions.record_attempt(email, req, profile))


# -- confirming a flagged signature -----------------------------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(list(reversed(current_app.config["SECRET_KEYS"])),
                                  salt=SIGNATURE_CONFIRM_SALT)


def make_confirm_token(signature_id: int) -> str:
    return _serializer().dumps(signature_id)


class ConfirmLinkError(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "invalid" | "expired"


def read_confirm_token(token: str) -> int:
    try:
        data = _serializer().loads(token, max_age=SIGNATURE_CONFIRM_MAX_AGE)
    except SignatureExpired as exc:
        raise ConfirmLinkError("expired") from exc
    except BadSignature as exc:
        raise ConfirmLinkError("invalid") from exc
    if not isinstance(data, int):
        raise ConfirmLinkError("invalid")
    return data


def confirmable(signature_id: int) -> Signature | None:
    """The signature a confirmation link names; None when it is gone or its signer was erased,
    so that the link of an erased signer is dead like any invalid one."""
    signature = db.session.get(Signature, signature_id)
    return None if signature is None or signature.email == ERASED else signature


def confirm_signature(token: str) -> Signature | None:
    """Count a flagged signature (idempotent); None when it is gone or erased. The caller commits."""
    signature = confirmable(read_confirm_token(token))
    if signature is not None and signature.confirmed_at is None:
        signature.confirmed_at = utcnow()
        # The link proves the address: its subscriber's empty name and postal code may be filled.
        fill_profile(signature.name, signature.postal_code, email=signature.email)
        letters.on_counted(signature.id, signature.action_id)  # (nothing unless it is a letter)
        journeys_on_counted(signature.id)
    return signature


def journeys_on_counted(signature_id: int) -> None:
    """Once the signature's commit is in, its signer enters the journeys of signed:SLUG."""
    queueing.after_commit(tasknames.JOURNEY_SIGNED, signature_id)


# -- counts ------------------------------------------------------------------------------


def count(action_id: int) -> int:
    """Signatures that count: confirmed, or taken by an action that asks no confirmation."""
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(Signature)
        .where(Signature.action_id == action_id, Signature.confirmed_at.is_not(None))
    ) or 0


def counts_by_action() -> dict[int, int]:
    rows = db.session.execute(
        sa.select(Signature.action_id, sa.func.count())
        .where(Signature.confirmed_at.is_not(None)).group_by(Signature.action_id)
    )
    return dict(rows.all())


_STEPS = (1, 2.5, 5)


def goal_for(action: Action, signatures: int) -> int:
    """Staff's goal, else the next round number above the count (100, 250, 500, 1,000, …)."""
    if action.goal:
        return action.goal
    scale = 100
    while True:
        for step in _STEPS:
            if signatures < step * scale:
                return int(step * scale)
        scale *= 10


def signed_action_ids(email: str) -> frozenset[int]:
    return frozenset(db.session.scalars(
        sa.select(Signature.action_id).where(Signature.email_key == email_key(email))
    ))


SIGNATURE_CONFIRM_SLOTS = ("confirm_url", "email", "action_title")


def signer_language(signature_id: int, language: str | None = None) -> str | None:
    """The language of the page signed on, else the signer's own as a subscriber (None: neither)."""
    if i18n.known(language):
        return language
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.email == ERASED:
        return None
    return db.session.scalar(
        sa.select(Subscriber.language).where(Subscriber.email_key == subscriber_key(signature.email)))


# Written to whoever signed, who need not be on the list: no list to unsubscribe from.
@emails.email("signature_confirmation", task=tasknames.SEND_SIGNATURE_CONFIRMATION, subscriber=False,
              language=signer_language)
def send_signature_confirmation(signature_id: int, language: str | None = None) -> emails.Email | None:
    """Mail a flagged signature its confirmation link, in `language` (the page's) or the signer's;
    None when there is nothing to confirm (confirmed meanwhile, erased)."""
    signature = db.session.get(Signature, signature_id)
    if signature is None or signature.confirmed_at is not None or signature.email == ERASED:
        return None
    action = db.session.get(Action, signature.action_id)
    assert action is not None  # its signatures go with it (ON DELETE CASCADE)
    return emails.Email(
        to=signature.email,
        compiled=compiled("signature_confirm", SIGNATURE_CONFIRM_SLOTS, org_context),
        values={"confirm_url": external_url("public.confirm_signature",
                                            token=make_confirm_token(signature.id)),
                "action_title": text_of(action, i18n.current()).title},
        return_path=envelope_sender(current_app.config),
    )
