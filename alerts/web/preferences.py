"""The subscriber's choices short of unsubscribing, offered on the unsubscribe page: topics, a pause.

The unsubscribe token is the credential, as for unsubscribing; these forms also carry a CSRF
token (they are reached in a browser, never by one-click), so no other site can post them.
The RFC 8058 one-click POST to /unsubscribe/<token> is untouched: it unsubscribes from everything.
"""

from __future__ import annotations

from flask import render_template, request

from ..extensions import db
from ..models import Subscriber, SubscriberStatus, utcnow
from ..subscribers import preferences
from ..subscribers.tokens import TokenError, unsubscribe_subscriber_id

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


def preferences_context(sub: Subscriber | None) -> dict:
    """What the unsubscribe page shows above "unsubscribe from everything"."""
    if sub is None or sub.status != SubscriberStatus.CONFIRMED:
        return {"offer_preferences": False}
    paused = sub.paused_until if sub.paused_until and sub.paused_until > utcnow() else None
    return {"offer_preferences": True, "topics": preferences.TOPICS,
            "chosen": preferences.topics_of(sub.id), "paused_until": paused,
            "pause_days": preferences.PAUSE_DAYS}


def _subscriber(token: str) -> Subscriber | None:
    try:
        subscriber_id = unsubscribe_subscriber_id(token)
    except TokenError:
        return None
    sub = db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    return sub if sub is not None and sub.status == SubscriberStatus.CONFIRMED else None


def _no_subscription(token: str):
    return render_template("preferences_done.html", token=token, gone=True), 404, HEADERS


def topics(token: str):
    sub = _subscriber(token)
    if sub is None:
        return _no_subscription(token)
    try:
        chosen = preferences.set_topics(sub.id, request.form.getlist("topics"))
    except preferences.PreferenceError as exc:
        db.session.rollback()
        return render_template("unsubscribe.html", token=token, subscriber=sub, error=str(exc),
                               **preferences_context(sub)), 400, HEADERS
    db.session.commit()
    labels = [preferences.TOPIC_LABELS[t] for t in chosen]
    return render_template("preferences_done.html", token=token, saved="topics", labels=labels), 200, HEADERS


def pause(token: str):
    sub = _subscriber(token)
    if sub is None:
        return _no_subscription(token)
    preferences.pause(sub)
    db.session.commit()
    return render_template("preferences_done.html", token=token, saved="paused",
                           until=sub.paused_until), 200, HEADERS


def resume(token: str):
    sub = _subscriber(token)
    if sub is None:
        return _no_subscription(token)
    preferences.unpause(sub)
    db.session.commit()
    return render_template("preferences_done.html", token=token, saved="resumed"), 200, HEADERS
