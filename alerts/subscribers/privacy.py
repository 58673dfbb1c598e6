"""A subscriber's own data: a copy of it (GDPR art. 15/20) and its erasure (art. 17).

Erasure deletes the subscriber row and with it the consent history; deliveries stay as
anonymous rows (subscriber_id NULL, error text dropped) so alert counts still add up. What
remains is a suppression keyed by the SHA-256 of the address, with no address in it: the
address is not mailed again by any path, and a new signup for it gets the usual "check
your inbox" page and no email, exactly as for any other suppressed address.

Unsubscribing is not erasure: after an unsubscribe the consent records stay, so the
organisation can still prove what was agreed to and when.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from .. import clickcounts, suppressions, webhooks
from ..extensions import db
from ..models import (
    Action,
    ActionTarget,
    Alert,
    BounceEvent,
    CallLog,
    Click,
    Delivery,
    Signature,
    Subscriber,
    SubscriberFieldValue,
    SubscriberTopic,
    Suppression,
    SuppressionLift,
    email_hash,
    utcnow,
)
from ..webhooks import outbox, payloads
from . import fields
from .preferences import topics_of

log = logging.getLogger(__name__)



def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _signatures_of(sub: Subscriber) -> sa.ColumnElement[bool]:
    """A subscriber's signatures: linked to them, or made with their address before they joined."""
    return sa.or_(Signature.subscriber_id == sub.id, Signature.email_key == sub.email.strip().casefold())


def export_subscriber_data(sub_id: int) -> dict[str, Any] | None:
    """Everything kept about one subscriber, as JSON-ready data; None if there is no such row."""
    sub = db.session.get(Subscriber, sub_id)
    if sub is None:
        return None
    deliveries = db.session.execute(
        sa.select(Delivery.alert_id, Alert.subject, Delivery.status, Delivery.attempts,
                  Delivery.sent_at, Delivery.error)
        .join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.subscriber_id == sub.id)
        .order_by(Delivery.id)
    ).all()
    clicks = db.session.execute(
        sa.select(Click.alert_id, Alert.subject, Click.link_index, Action.slug, Click.machine,
                  Click.machine_reason, Click.at)
        .join(Alert, Alert.id == Click.alert_id)
        .outerjoin(Action, Action.id == Click.action_id)
        .where(Click.subscriber_id == sub.id)
        .order_by(Click.at, Click.id)
    ).all()
    suppression = db.session.scalar(
        sa.select(Suppression).where(Suppression.email_hash == email_hash(sub.email))
    )
    signatures = db.session.execute(
        sa.select(Signature, Action.slug, Action.title)
        .join(Action, Action.id == Signature.action_id)
        .where(_signatures_of(sub))
        .order_by(Signature.id)
    ).all()
    calls = db.session.execute(
        sa.select(CallLog, Action.slug, ActionTarget.name)
        .join(Signature, Signature.id == CallLog.signature_id)
        .join(Action, Action.id == CallLog.action_id)
        .join(ActionTarget, ActionTarget.id == CallLog.target_id)
        .where(_signatures_of(sub))
        .order_by(CallLog.id)
    ).all()
    values = fields.values_for([sub.id]).get(sub.id, {})
    return {
        "exported_at": _iso(utcnow()),
        "subscriber": {
            "id": sub.id,
            "email": sub.email,
            "status": sub.status,
            "first_name": sub.first_name,
            "last_name": sub.last_name,
            "postal_code": sub.postal_code,
            "phone": sub.phone,
            "language": sub.language,
            # Every field staff defined, each with the person's value (null where none was given).
            "fields": [
                {"key": f.key, "label": f.label,
                 "value": fields.shown(f, values[f.key]) if f.key in values else None}
                for f in fields.custom()
            ],
            # What a later signup for this address typed, kept until its owner confirms it.
            "awaiting_confirmation": sub.pending_profile or None,
            "created_at": _iso(sub.created_at),
            "confirmed_at": _iso(sub.confirmed_at),
            "unsubscribed_at": _iso(sub.unsubscribed_at),
            "last_confirmation_email_at": _iso(sub.last_confirmation_at),
            "source": sub.source,
            "topics": topics_of(sub.id),
            "paused_until": _iso(sub.paused_until),
        },
        "consent_records": [
            {
                "event": c.event,
                "at": _iso(c.at),
                "ip": c.ip,
                "user_agent": c.user_agent,
                "consent_text_version": c.consent_text_version,
                "source": c.source,
            }
            for c in sub.consents
        ],
        "deliveries": [
            {
                "alert_id": d.alert_id,
                "subject": d.subject,
                "status": d.status,
                "attempts": d.attempts,
                "sent_at": _iso(d.sent_at),
                "error": d.error,
            }
            for d in deliveries
        ],
        "signatures": [
            {
                "action": slug,
                "title": title,
                "name": s.name,
                "email": s.email,
                "postal_code": s.postal_code,
                "comment": s.comment,
                "signed_at": _iso(s.created_at),
                "confirmed_at": _iso(s.confirmed_at),
                "source": s.source,
                "alert_id": s.alert_id,
            }
            for s, slug, title in signatures
        ],
        # How each call they reported went (a call campaign's reports).
        "call_logs": [
            {"action": slug, "target": target, "outcome": c.outcome, "note": c.note,
             "reported_at": _iso(c.created_at)}
            for c, slug, target in calls
        ],
        "clicks": [
            {
                "alert_id": c.alert_id,
                "subject": c.subject,
                "link_index": c.link_index,
                "action": c.slug,
                "at": _iso(c.at),
                "counted_as": "machine (scanner or prefetch)" if c.machine else "person",
                "machine_reason": c.machine_reason,
            }
            for c in clicks
        ],
        "suppression": (
            {"reason": suppression.reason, "since": _iso(suppression.created_at)} if suppression else None
        ),
    }


def erase_subscriber(sub_id: int, *, by: str) -> bool:
    """Delete a subscriber's personal data and keep the address suppressed, by hash only.

    `by` says who asked ("subscriber" or "staff:EMAIL"); it is recorded in the suppression's
    detail, with the date. Returns False when there was no such subscriber (already erased).
    The caller commits.

    What it clears, table by table: the subscriber row (name, postal code, phone, language
    with it), its consent records (cascade), its topic choices and its custom fields' values;
    their clicks (folded into the alerts' anonymous counters first, so totals stay put);
    signatures (linked, or made with the address) lose every personal field and
    stay as anonymous counts, and their call logs lose the caller's note;
    deliveries lose the subscriber and their SMTP text; bounce events lose their diagnostic
    (it may quote the address); every table with both `email` and `email_hash` (the
    suppression list, its lift audit) keeps the hash and loses the address and any detail
    that may quote it; webhook messages that quote the address lose their payload (those not
    yet sent are not sent), and a `subscriber.erased` event names the id alone.
    """
    sub = db.session.get(Subscriber, sub_id, with_for_update=True)
    if sub is None:
        return False
    email = sub.email
    key = email_hash(email)
    detail = f"erased {utcnow():%Y-%m-%d} at the request of {by}"
    suppressions.erase(key, detail)
    # Deliveries stay for the alerts' counts, anonymous: no subscriber, no SMTP text (which
    # often quotes the address).
    db.session.execute(
        sa.update(Delivery).where(Delivery.subscriber_id == sub.id).values(subscriber_id=None, error=None)
    )
    # Any other table that remembers an address beside its hash (the audit trail of lifted
    # suppressions, say) keeps the hash and loses the address.
    for table in db.metadata.sorted_tables:
        if table.name != Suppression.__tablename__ and {"email", "email_hash"} <= set(table.c.keys()):
            db.session.execute(sa.update(table).where(table.c.email_hash == key).values(email=None))
    db.session.execute(
        sa.update(BounceEvent).where(BounceEvent.subscriber_id == sub.id).values(diagnostic=None)
    )
    # Signatures stay as anonymous rows, so a petition's count does not drop: no subscriber,
    # no address, name, postal code or comment, and a key no address can match again. Their
    # call logs stay for the campaign's counts, without the caller's note.
    for signature_id in db.session.scalars(sa.select(Signature.id).where(_signatures_of(sub))).all():
        db.session.execute(
            sa.update(Signature).where(Signature.id == signature_id).values(
                subscriber_id=None, email="", email_key=f"erased:{signature_id}", name="",
                postal_code=None, comment=None,
            )
        )
        db.session.execute(sa.update(CallLog).where(CallLog.signature_id == signature_id).values(note=None))
    db.session.execute(
        sa.update(SuppressionLift).where(SuppressionLift.email_hash == key).values(detail=None)
    )
    clickcounts.fold(Click.subscriber_id == sub.id)
    db.session.execute(sa.delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == sub.id))
    # Every custom field's value; the name, postal code, phone and language go with the row.
    db.session.execute(sa.delete(SubscriberFieldValue).where(SubscriberFieldValue.subscriber_id == sub.id))
    db.session.delete(sub)  # its consent records go with it (cascade)
    # Messages already waiting for endpoints that quote the address lose their payload's data.
    outbox.scrub_subscriber(email)
    outbox.emit(webhooks.SUBSCRIBER_ERASED, payloads.erased(sub_id))
    log.info("subscriber erased", extra={"subscriber_id": sub_id, "erased_by": by.split(":")[0]})
    return True
