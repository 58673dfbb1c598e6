"""The subscriber's choices short of unsubscribing, offered on the unsubscribe page: their
language, topics, a pause.

The unsubscribe token is the credential, as for unsubscribing; these forms also carry a CSRF
token (they are reached in a browser, never by one-click), so no other site can post them.
The RFC 8058 one-click POST to /unsubscribe/<token> is untouched: it unsubscribes from everything.
Every page a subscriber's own link leads to speaks their language (`use_subscribers_language`).
"""

from __future__ import annotations

import contextlib

import sqlalchemy as sa
from flask import current_app, g, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import refresh

from .. import i18n
from ..extensions import db
from ..models import Subscriber, SubscriberStatus, utcnow
from ..subscribers import preferences
from ..subscribers.tokens import (
    TokenError,
    confirm_token_key,
    read_unsubscribe_token,
    unsubscribe_subscriber_id,
)

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}


# The pages a subscriber's own link leads to, and which kind of token their URL carries.
CONFIRM_ENDPOINTS = ("public.confirm",)
UNSUBSCRIBE_ENDPOINTS = ("public.unsubscribe",)
UNSUBSCRIBE_BLUEPRINTS = ("preferences", "privacy")


def use_subscribers_language() -> None:
    """A page reached from a subscriber's email link speaks their language, unless `?lang=` or
    the cookie chose another (i18n reads `g.subscriber_language` after those)."""
    token = (request.view_args or {}).get("token")
    endpoint = request.endpoint or ""
    if not token or i18n.known(request.args.get("lang")) or i18n.known(request.cookies.get(i18n.COOKIE)):
        return
    key: str | None = None
    if endpoint in CONFIRM_ENDPOINTS:
        key = confirm_token_key(token)  # (an expired link too: "this link has expired" in theirs)
    elif endpoint in UNSUBSCRIBE_ENDPOINTS or endpoint.split(".", 1)[0] in UNSUBSCRIBE_BLUEPRINTS:
        with contextlib.suppress(TokenError):
            key = read_unsubscribe_token(token)
    if key is None:
        return  # a sample or legacy link, or a forged one: no one's language to use
    g.subscriber_language = db.session.scalar(
        sa.select(Subscriber.language).where(Subscriber.token_key == key))


def preferences_context(sub: Subscriber | None) -> dict:
    """What the unsubscribe page shows above "unsubscribe from everything"."""
    if sub is None or sub.status != SubscriberStatus.CONFIRMED:
        return {"offer_preferences": False}
    paused = sub.paused_until if sub.paused_until and sub.paused_until > utcnow() else None
    return {"offer_preferences": True, "topics": preferences.TOPICS,
            "chosen": preferences.topics_of(sub.id), "paused_until": paused,
            "pause_days": preferences.PAUSE_DAYS, "language": i18n.language_of(sub.language)}


def _subscriber(token: str) -> Subscriber | None:
    try:
        subscriber_id = unsubscribe_subscriber_id(token)
    except TokenError:
        return None
    sub = db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
    return sub if sub is not None and sub.status == SubscriberStatus.CONFIRMED else None


def _no_subscription(token: str):
    return render_template("preferences_done.html", token=token, gone=True), 404, HEADERS


def _language(token: str, sub: Subscriber):
    """The language chosen on the preferences page: kept as the subscriber's (for email) and in
    the page's cookie, so this answer and every page after it speak it at once."""
    code = i18n.known(request.form.get("language"))
    if code is None:
        return render_template("unsubscribe.html", token=token, subscriber=sub,
                               language_error=_("Choose one of the languages listed."),
                               **preferences_context(sub)), 400, HEADERS
    sub.language = code
    db.session.commit()
    g.forced_language = code
    refresh()  # (the page's language may already have been read in this request)
    response = make_response(render_template("preferences_done.html", token=token, saved="language"), 200,
                             HEADERS)
    response.set_cookie(i18n.COOKIE, code, max_age=i18n.COOKIE_SECONDS, samesite="Lax", httponly=True,
                        secure=current_app.config.get("SESSION_COOKIE_SECURE") or False)
    return response


def topics(token: str):
    """The topics form, or the language form (which posts here too, with `language`)."""
    sub = _subscriber(token)
    if sub is None:
        return _no_subscription(token)
    if "language" in request.form:
        return _language(token, sub)
    try:
        chosen = preferences.set_topics(sub.id, request.form.getlist("topics"))
    except preferences.PreferenceError as exc:
        db.session.rollback()
        return render_template("unsubscribe.html", token=token, subscriber=sub, error=str(exc),
                               **preferences_context(sub)), 400, HEADERS
    db.session.commit()
    labels = [_(preferences.TOPIC_LABELS[t]) for t in chosen]
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
