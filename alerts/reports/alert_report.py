"""One alert's report: delivery, bounces, complaints, unsubscribes, human and machine clicks per
link and per action, signatures attributed to the alert, click-to-sign, and the first hour,
day and week. Every figure is a count of rows (clicks come from the per-person rows plus the
counters that hold aggregate and folded clicks), so it can be checked against the database.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from .. import clickcounts, i18n
from ..extensions import db
from ..models import (
    Action,
    Alert,
    AlertLink,
    BounceEvent,
    BounceKind,
    CallLog,
    Click,
    ConsentRecord,
    Delivery,
    DeliveryStatus,
    LetterDelivery,
    Signature,
    Subscriber,
)

WINDOWS = (("first_hour", "hour", timedelta(hours=1)), ("first_day", "day", timedelta(days=1)),
           ("first_week", "week", timedelta(days=7)))


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _count(query: sa.Select[int]) -> int:
    return db.session.scalar(query) or 0


def delivery_figures(alert_id: int) -> dict[str, int]:
    by_status = dict(db.session.execute(
        sa.select(Delivery.status, sa.func.count()).where(Delivery.alert_id == alert_id)
        .group_by(Delivery.status)
    ).all())

    def with_event(*kinds: BounceKind) -> sa.Select:
        return (sa.select(sa.func.count(sa.distinct(BounceEvent.delivery_id)))
                .join(Delivery, Delivery.id == BounceEvent.delivery_id)
                .where(Delivery.alert_id == alert_id, BounceEvent.kind.in_(kinds)))

    bounced_sent = _count(
        sa.select(sa.func.count()).select_from(Delivery)
        .where(Delivery.alert_id == alert_id, Delivery.status == DeliveryStatus.SENT,
               sa.exists().where(BounceEvent.delivery_id == Delivery.id,
                                 BounceEvent.kind.in_([BounceKind.HARD, BounceKind.SOFT])))
    )
    sent = by_status.get(DeliveryStatus.SENT, 0)
    return {
        "recipients": sum(by_status.values()),
        "sent": sent,
        "delivered": sent - bounced_sent,
        "failed": by_status.get(DeliveryStatus.FAILED, 0),
        "skipped": by_status.get(DeliveryStatus.SKIPPED, 0),
        "not_sent_yet": by_status.get(DeliveryStatus.QUEUED, 0) + by_status.get(DeliveryStatus.SENDING, 0),
        "bounced": _count(with_event(BounceKind.HARD, BounceKind.SOFT)),
        "hard_bounced": _count(with_event(BounceKind.HARD)),
        "complaints": _count(with_event(BounceKind.COMPLAINT)),
    }


def unsubscribed(alert_id: int) -> int:
    """Recipients whose unsubscribe came after this alert reached them and before any later alert did."""
    later = sa.orm.aliased(Delivery)
    return _count(
        sa.select(sa.func.count(sa.distinct(Delivery.id)))
        .join(ConsentRecord, ConsentRecord.subscriber_id == Delivery.subscriber_id)
        .where(
            Delivery.alert_id == alert_id,
            Delivery.sent_at.is_not(None),
            ConsentRecord.event.like("unsubscribe%"),
            ConsentRecord.at >= Delivery.sent_at,
            ~sa.exists().where(later.subscriber_id == Delivery.subscriber_id,
                               later.sent_at > Delivery.sent_at, later.sent_at <= ConsentRecord.at),
        )
    )


def click_tally(alert: Alert) -> clickcounts.Tally:
    """Per-person rows tallied, plus the counters (aggregate mode, folded rows)."""
    rows = clickcounts.events(Click.alert_id == alert.id).get(alert.id, [])
    return clickcounts.tally(rows, alert.started_at).add(clickcounts.stored(alert.id))


def first_action_clicks(alert_id: int) -> dict[tuple[int | None, int | None], datetime]:
    """Each person's (delivery's) first human click on each action's link, from the per-person
    rows (none with TRACK_CLICKS=aggregate or once the rows are folded into counters)."""
    return {(d, a): at for d, a, at in db.session.execute(
        sa.select(Click.delivery_id, Click.action_id, sa.func.min(Click.at))
        .where(Click.alert_id == alert_id, Click.machine.is_(False),
               Click.delivery_id.is_not(None), Click.action_id.is_not(None))
        .group_by(Click.delivery_id, Click.action_id)
    )}


def _per_language(query: sa.Select) -> collections.Counter:
    """A (stored language, count) query's counts by the language each reads (`language_of`)."""
    out: collections.Counter = collections.Counter()
    for stored, n in db.session.execute(query):
        out[i18n.language_of(stored)] += n
    return out


def by_language(alert_id: int, clicks_known: bool = True) -> list[dict]:
    """Per language its recipients read now: recipients, delivered, people who clicked and who
    signed, with the rates of those delivered. Clickers are None without per-person click rows."""
    def grouped(count: Any, *joins_where: Any) -> sa.Select:
        return (sa.select(Subscriber.language, count).select_from(Delivery)
                .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.alert_id == alert_id, *joins_where).group_by(Subscriber.language))

    recipients = _per_language(grouped(sa.func.count()))
    sent = _per_language(grouped(sa.func.count(), Delivery.status == DeliveryStatus.SENT))
    bounce = sa.exists().where(BounceEvent.delivery_id == Delivery.id,
                               BounceEvent.kind.in_([BounceKind.HARD, BounceKind.SOFT]))
    bounced = _per_language(grouped(sa.func.count(), Delivery.status == DeliveryStatus.SENT, bounce))
    clickers = _per_language(grouped(sa.func.count(), sa.exists().where(
        Click.delivery_id == Delivery.id, Click.alert_id == alert_id, Click.machine.is_(False))))
    signers = _per_language(grouped(sa.func.count(), sa.exists().where(
        Signature.delivery_id == Delivery.id, Signature.alert_id == alert_id)))
    per_person = current_app.config["TRACK_CLICKS"] == "person"
    clicks_known = clicks_known and (sum(clickers.values()) > 0 or per_person)
    out = []
    for code in i18n.languages():
        delivered = sent[code] - bounced[code]
        clicked = clickers[code] if clicks_known else None
        out.append({
            "language": code, "name": i18n.STAFF_NAMES.get(code, code),
            "recipients": recipients[code], "delivered": delivered,
            "clickers": clicked, "click_rate": _rate(clicked, delivered) if clicked is not None else None,
            "signers": signers[code], "sign_rate": _rate(signers[code], delivered),
        })
    return out


def letters_and_calls(alert_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """Per action, the letters sent (one per signer and target) and the calls logged by the
    signers this alert brought."""
    letters = db.session.execute(
        sa.select(Signature.action_id, sa.func.count())
        .join(LetterDelivery, LetterDelivery.signature_id == Signature.id)
        .where(Signature.alert_id == alert_id, LetterDelivery.status == "sent")
        .group_by(Signature.action_id)
    ).all()
    calls = db.session.execute(
        sa.select(CallLog.action_id, sa.func.count())
        .join(Signature, Signature.id == CallLog.signature_id)
        .where(Signature.alert_id == alert_id)
        .group_by(CallLog.action_id)
    ).all()
    return {a: n for a, n in letters}, {a: n for a, n in calls}


def report(alert_id: int) -> dict | None:
    """The whole report as JSON-ready data; None when there is no such alert."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        return None
    tally = click_tally(alert)
    whole = tally.row(clickcounts.ALERT_WIDE)
    # (link index, URL, action id, slug, title, kind): the query's rows, or a draft's actions
    links: Sequence[Any] = db.session.execute(
        sa.select(AlertLink.link_index, AlertLink.url, AlertLink.action_id, Action.slug, Action.title,
                  Action.kind)
        .outerjoin(Action, Action.id == AlertLink.action_id)
        .where(AlertLink.alert_id == alert_id).order_by(AlertLink.link_index)
    ).all()
    if not links:  # a draft, or sent with TRACK_CLICKS=off: the actions it names
        links = [(None, None, a.id, a.slug, a.title, a.kind) for a in alert.actions]
    letters, calls = letters_and_calls(alert_id)

    sig_rows = db.session.execute(
        sa.select(Signature.action_id, Signature.created_at, Signature.delivery_id, Signature.source_code)
        .where(Signature.alert_id == alert_id)
    ).all()
    first_click = first_action_clicks(alert_id)
    by_action: dict[int, dict] = {}
    link_items = []
    for index, url, action_id, slug, title, kind in links:
        counts = tally.row(index) if index is not None else dict.fromkeys(clickcounts.COUNTERS, 0)
        link_items.append({"index": index, "url": url, "action": slug,
                           "unique_clicks": counts["unique_clicks"], "total_clicks": counts["clicks"],
                           "machine_clicks": counts["machine_clicks"]})
        if action_id is None:
            continue
        item = by_action.setdefault(action_id, {
            "slug": slug, "title": title, "kind": kind, "unique_clicks": 0, "total_clicks": 0,
            "machine_clicks": 0, "signatures": 0, "signatures_after_click": 0, "people_signed_after_click": 0,
            "letters_sent": letters.get(action_id, 0), "calls_made": calls.get(action_id, 0),
        })
        item["unique_clicks"] += counts["unique_clicks"]
        item["total_clicks"] += counts["clicks"]
        item["machine_clicks"] += counts["machine_clicks"]
    signatures_after_click = 0
    signed_after: set[tuple[int, int]] = set()  # (delivery, action): that person signed it after a click
    for sig in sig_rows:
        entry = by_action.get(sig.action_id)
        clicked_at = first_click.get((sig.delivery_id, sig.action_id))
        after = clicked_at is not None and sig.created_at >= clicked_at
        signatures_after_click += after
        if after:
            signed_after.add((sig.delivery_id, sig.action_id))
        if entry is not None:
            entry["signatures"] += 1
            entry["signatures_after_click"] += after
    # Click-to-sign is a share of people: those who clicked and then signed (known from the
    # per-person rows, so never more than the people counted as clicking), of those who clicked.
    # Without per-person rows (TRACK_CLICKS=aggregate, rows folded away) it is not known: None.
    def click_to_sign(signed: int, clicked: int) -> float | None:
        return _rate(min(signed, clicked), clicked) if first_click else None

    for action_id, item in by_action.items():
        item["people_signed_after_click"] = sum(1 for _, a in signed_after if a == action_id)
        item["click_to_sign_rate"] = click_to_sign(item["people_signed_after_click"], item["unique_clicks"])
    people_signed_after_click = min(len({who for who, _ in signed_after}), whole["unique_clicks"])

    figures = delivery_figures(alert_id)
    opened = tally.by_link.get(clickcounts.OPENS)
    started = alert.started_at
    windows = {}
    for key, name, span in WINDOWS:
        sigs = sum(1 for s in sig_rows if started and s.created_at - started < span)
        windows[key] = {"clicks": {"unique": whole[f"unique_{name}"], "total": whole[f"clicks_{name}"]},
                        "signatures": sigs}
    return {
        "id": alert.id,
        "subject": alert.subject,
        "state": alert.state,
        "started_at": started.isoformat() if started else None,
        "track_clicks": current_app.config["TRACK_CLICKS"],  # as set now: person | aggregate | off
        **figures,
        "unsubscribed": unsubscribed(alert_id),
        "clicks": {"unique": whole["unique_clicks"], "total": whole["clicks"],
                   "machine": whole["machine_clicks"]},
        "click_rate": _rate(whole["unique_clicks"], figures["delivered"]),  # people who clicked
        # Only with TRACK_OPENS=on (None otherwise): pixel fetches, machines (Apple's proxy,
        # scanners) apart; mostly noise since Apple Mail Privacy Protection.
        "opens": ({"unique": opened["unique_clicks"], "total": opened["clicks"],
                   "machine": opened["machine_clicks"]} if opened else None),
        "signatures": len(sig_rows),
        "signatures_after_click": signatures_after_click,
        # People, not signatures: of the people who clicked, the share who then signed an
        # action whose link they had clicked (0-1; None when nobody clicked).
        "people_signed_after_click": people_signed_after_click,
        "click_to_sign_rate": click_to_sign(people_signed_after_click, whole["unique_clicks"]),
        "by_action": list(by_action.values()),
        # The `?source=` codes this alert's signatures came with (its links can carry one), biggest first.
        "by_source_code": [{"source_code": c, "signatures": n} for c, n in sorted(
            collections.Counter(s.source_code for s in sig_rows if s.source_code).items(),
            key=lambda item: (-item[1], item[0]))],
        "links": link_items,
        # Per language recipients read (as their subscriber records say now).
        "by_language": by_language(alert_id),
        **windows,
    }


def funnels(limit: int = 8) -> list[dict]:
    """The latest sent alerts' funnels for the dashboard, each step in people: delivered, clicked,
    signed (recipients whose alert led to a signature, however many actions they signed)."""
    alerts = db.session.scalars(
        sa.select(Alert).where(Alert.started_at.is_not(None))
        .order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit)
    ).all()
    out = []
    for alert in alerts:
        whole = click_tally(alert).row(clickcounts.ALERT_WIDE)
        out.append({
            "id": alert.id,
            "subject": alert.subject,
            "delivered": delivery_figures(alert.id)["delivered"],
            "clicked": whole["unique_clicks"],
            "signed": _count(sa.select(sa.func.count(sa.distinct(Signature.delivery_id)))
                             .where(Signature.alert_id == alert.id)),
            "signatures": _count(sa.select(sa.func.count()).select_from(Signature)
                                 .where(Signature.alert_id == alert.id)),
        })
    return out
