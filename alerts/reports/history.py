"""One subscriber's story for staff: signup and consent, alerts received, clicks, signatures,
unsubscribe, bounces, and why the address is suppressed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from ..extensions import db
from ..models import (
    Action,
    Alert,
    BounceEvent,
    Click,
    Delivery,
    Signature,
    Subscriber,
    Suppression,
    email_hash,
)
from ..tracking import machines

LIMIT = 300  # events per kind shown; the data download has them all

CONSENT_WORDS = {
    "signup": "Signed up", "confirm": "Confirmed the address",
    "import:documented": "Imported (documented consent)",
    "import:confirm-first": "Imported (asked to confirm)", "unsubscribe:link": "Unsubscribed (link)",
    "unsubscribe:one-click": "Unsubscribed (one-click, from the mail program)",
    "unsubscribe:complaint": "Unsubscribed (marked an alert as spam)",
}
DELIVERY_WORDS = {"sent": "Received", "failed": "Could not be sent", "skipped": "Skipped"}
SUPPRESSION_WORDS = {
    "hard-bounce": "the address bounced permanently", "soft-bounce": "the address kept bouncing",
    "complaint": "they marked an alert as spam", "manual": "staff added it by hand",
    "erased": "the person's data was erased",
}


@dataclass(frozen=True)
class Event:
    at: datetime | None
    kind: str  # consent | unsubscribe | delivery | click | signature | bounce | suppressed
    what: str
    detail: str = ""
    alert_id: int | None = None


def suppression_reason(sub: Subscriber) -> tuple[Suppression, str] | None:
    found = db.session.scalar(sa.select(Suppression).where(Suppression.email_hash == email_hash(sub.email)))
    if found is None:
        return None
    return found, SUPPRESSION_WORDS.get(found.reason, found.reason)


def for_subscriber(sub: Subscriber) -> list[Event]:
    """Everything that happened to and by this subscriber, oldest first."""
    events: list[Event] = []
    for c in sub.consents[-LIMIT:]:
        kind = "unsubscribe" if c.event.startswith("unsubscribe") else "consent"
        detail = ", ".join(x for x in (c.source and f"source: {c.source}",
                                        c.consent_text_version and f"text {c.consent_text_version}",
                                        c.ip and f"from {c.ip}") if x)
        events.append(Event(c.at, kind, CONSENT_WORDS.get(c.event, c.event), detail))
    for d, subject in db.session.execute(
        sa.select(Delivery, Alert.subject).join(Alert, Alert.id == Delivery.alert_id)
        .where(Delivery.subscriber_id == sub.id).order_by(Delivery.id.desc()).limit(LIMIT)
    ):
        what = DELIVERY_WORDS.get(d.status, d.status)
        events.append(Event(d.sent_at or d.claimed_at, "delivery", f"{what}: {subject}",
                            d.error or "", d.alert_id))
    for click, subject, title in db.session.execute(
        sa.select(Click, Alert.subject, Action.title).join(Alert, Alert.id == Click.alert_id)
        .outerjoin(Action, Action.id == Click.action_id)
        .where(Click.subscriber_id == sub.id).order_by(Click.id.desc()).limit(LIMIT)
    ):
        who = "A machine (link scanner or prefetch) opened" if click.machine else "Clicked"
        why = machines.REASON_WORDS.get(click.machine_reason or "")
        events.append(Event(click.at, "click", f"{who} “{title or f'link {click.link_index + 1}'}”",
                            f"in {subject}" + (f" ({why})" if why else ""), click.alert_id))
    for s, title, subject in db.session.execute(
        sa.select(Signature, Action.title, Alert.subject).join(Action, Action.id == Signature.action_id)
        .outerjoin(Alert, Alert.id == Signature.alert_id)
        .where(Signature.subscriber_id == sub.id).order_by(Signature.id.desc()).limit(LIMIT)
    ):
        via = f"from the alert “{subject}”" if subject else f"source: {s.source}"
        events.append(Event(s.created_at, "signature", f"Signed “{title}”", via, s.alert_id))
    for b in db.session.scalars(
        sa.select(BounceEvent).where(BounceEvent.subscriber_id == sub.id)
        .order_by(BounceEvent.id.desc()).limit(LIMIT)
    ):
        events.append(Event(b.received_at, "bounce", f"{b.kind.capitalize()} bounce report"
                            if b.kind != "complaint" else "Spam complaint",
                            " ".join(x for x in (b.status, b.outcome) if x)))
    found = suppression_reason(sub)
    if found:
        entry, why = found
        events.append(Event(entry.created_at, "suppressed", f"Suppressed: {why}", entry.detail or ""))
    events.sort(key=lambda e: (e.at is None, e.at or datetime.min))
    return events
