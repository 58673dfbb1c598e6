"""The public side: the Action Center, the signup form, confirm and unsubscribe links."""

from __future__ import annotations

import logging
from pathlib import Path

import sqlalchemy as sa
from flask import (
    current_app,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, Signer
from wtforms import EmailField, StringField

from .. import actions, i18n, redis_conn
from ..embeds.sources import clean_source
from ..extensions import csrf, db, limiter
from ..models import Subscriber
from ..subscribers import confirmations, fields, preferences, signup_form, subscriptions, welcome
from ..subscribers.tokens import (
    SAMPLE_UNSUBSCRIBE_TOKENS,
    TokenError,
    legacy_unsubscribe_id,
    unsubscribe_subscriber_id,
)
from . import ratelimits
from .client import client_request
from .preferences import preferences_context

log = logging.getLogger(__name__)


class SubscribeForm(FlaskForm):
    email = EmailField("Email address")
    website = StringField("Please leave this field empty")  # the honeypot


# The address just posted, kept in a signed cookie of its own (the visitor's browser only, for
# /subscribe only, gone when the browser closes) so the "check your inbox" page can echo it
# after the redirect, never in a URL or a log. Not in the session: re-signing the session
# cookie on every signup costs CPU a burst of signups has better use for.
SIGNUP_COOKIE = "signup_email"


def _echo_signer() -> Signer:
    return Signer(current_app.secret_key or "", salt="signup-email-echo")


def _index_page(form: SubscribeForm, *, source_code: str, email_error: str | None = None,
                entry: signup_form.Entry | None = None) -> str:
    entry = entry or signup_form.Entry()
    return render_template("index.html", actions=actions.open_actions(), form=form, email_error=email_error,
                           source_code=source_code, signup_fields=fields.signup_form_fields(),
                           typed=entry.typed, errors=entry.errors)


def index():
    return _index_page(SubscribeForm(), source_code=clean_source(request.args.get("source")) or "")


def _subscribe_rate_limit() -> str:
    return current_app.config["SUBSCRIBE_RATE_LIMIT"]


@limiter.counts_itself  # limited per IP in the view, in one round trip (`ratelimits.check`)
def subscribe():
    # (The CSRF token was checked by CSRFProtect before this view ran: a bad one is a 400 page.
    # The form is read as posted; a SubscribeForm is built only to show the page again.)
    ratelimits.check(((_subscribe_rate_limit(), f"subscribe-ip:{request.remote_addr}"),))
    posted = request.form
    if (posted.get("website") or "").strip():
        # A bot filled the honeypot: it sees the usual answer and nothing happens.
        log.info("honeypot filled from %s", request.remote_addr)
        return _done((posted.get("email") or "").strip()[:254])
    entry = signup_form.read(posted.getlist)
    email_error = None
    try:
        email = subscriptions.normalize_email(posted.get("email") or "")
    except subscriptions.InvalidEmail as exc:
        email_error = signup_form.email_message(exc)
    if email_error or entry.errors:
        page = make_response(_index_page(SubscribeForm(), email_error=email_error, entry=entry,
                                          source_code=clean_source(posted.get("source")) or ""), 400)
        page.delete_cookie(SIGNUP_COOKIE, path="/subscribe")  # a reload shows no earlier address as sent
        return page
    # The same steps and the same page whether the address is new, pending, confirmed,
    # unsubscribed or suppressed: one row written, one id queued, which decides later.
    # The source code the page came with (`?source=`), else the channel: the site's form.
    code = clean_source(posted.get("source"))
    attempt_id = subscriptions.record_attempt(email, client_request(source=code or "web-form"), entry.profile)
    confirmations.queue_signup(attempt_id)
    db.session.commit()
    # The same page whether the address was new, pending, confirmed or unsubscribed.
    return _done(email)


def _done(email: str):
    """Redirect after the POST, so reloading the answer page does not post the form again."""
    response = redirect(url_for("public.subscribe_done"), code=303)
    response.set_cookie(SIGNUP_COOKIE, _echo_signer().sign(email).decode(), path="/subscribe", httponly=True,
                        samesite="Lax", secure=request.is_secure)
    return response


def subscribe_done():
    """The answer page, echoing the address so a typo can be spotted (changes nothing)."""
    try:
        email = _echo_signer().unsign(request.cookies.get(SIGNUP_COOKIE, "")).decode()
    except BadSignature:  # none, or not ours
        email = ""
    if not email:
        return redirect(url_for("public.index", _anchor="advocate"))
    return render_template("subscribe_done.html", email=email)


def favicon():
    """Browsers ask for it whatever the page says; the icon is an SVG."""
    icon = Path(current_app.static_folder or "") / "favicon.svg"
    return icon.read_bytes(), 200, {"Content-Type": "image/svg+xml", "Cache-Control": "max-age=86400"}


def _token_error_page(exc: TokenError, kind: str):
    return render_template("token_error.html", reason=exc.reason, kind=kind), (
        410 if exc.reason in ("expired", "used") else 400
    )


@csrf.exempt  # the signed token is the credential; there is no session to forge
def confirm(token: str):
    if request.method != "POST":  # GET and HEAD (link scanners) only look
        try:
            already = subscriptions.confirm_state(token) == subscriptions.ConfirmOutcome.ALREADY
        except TokenError as exc:
            return _token_error_page(exc, "confirm")
        if already:
            # A used link says so at once; reading it changes nothing.
            return render_template("confirmed.html", already=True)
        return render_template("confirm.html", token=token, topics=preferences.TOPICS,
                               details=signup_form.shown(subscriptions.pending_profile(token)))
    try:
        outcome = subscriptions.confirm(token, client_request(),
                                        save_pending=request.form.get("save_details") == "1")
        if outcome == subscriptions.ConfirmOutcome.CONFIRMED:
            subscriber_id = subscriptions.confirm_token_subscriber_id(token)
            assert subscriber_id is not None  # the link just confirmed someone
            preferences.set_topics(subscriber_id, request.form.getlist("topics"))
            welcome.queue(subscriber_id)  # once per confirmation: the send claims it
    except TokenError as exc:
        db.session.rollback()
        return _token_error_page(exc, "confirm")
    except preferences.PreferenceError:
        db.session.rollback()
        return render_template("confirm.html", token=token, topics=preferences.TOPICS,
                               details=signup_form.shown(subscriptions.pending_profile(token)),
                               error=_("Choose topics from the list.")), 400
    db.session.commit()
    return render_template("confirmed.html", already=outcome == subscriptions.ConfirmOutcome.ALREADY)


@csrf.exempt  # RFC 8058 one-click comes with no cookie and no form token
def unsubscribe(token: str):
    legacy = False
    try:
        subscriber_id = unsubscribe_subscriber_id(token)
    except TokenError as exc:
        if token in SAMPLE_UNSUBSCRIBE_TOKENS:  # a staff test send's or preview's link
            if request.method == "POST":
                return _("Nothing to unsubscribe: this link is a sample.") + "\n", 200, {
                    "Content-Type": "text/plain; charset=utf-8"}
            return render_template("unsubscribe_sample.html")
        # A link from an email sent before links were bound to a token key: it still
        # unsubscribes, but shows no address and leads to no data pages.
        subscriber_id = legacy_unsubscribe_id(token)
        if subscriber_id is None:
            return _token_error_page(exc, "unsubscribe")
        legacy = True
    if request.method != "POST":  # GET and HEAD (link scanners) only look
        if legacy:
            return render_template("unsubscribe.html", token=token, subscriber=None)
        sub = db.session.get(Subscriber, subscriber_id) if subscriber_id is not None else None
        if sub is None:
            # Erased: there is no address left to unsubscribe or show.
            return render_template("privacy_gone.html"), 404, {"Cache-Control": "no-store"}
        return render_template("unsubscribe.html", token=token, subscriber=sub,
                               **preferences_context(sub))
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    sub = None
    if subscriber_id is not None:  # (None: erased; there is no one left to unsubscribe)
        via = "one-click" if one_click else "link"
        sub = subscriptions.unsubscribe(subscriber_id, client_request(source=via), via=via)
        db.session.commit()
    if one_click:
        # (in the subscriber's language: a mail program may show this answer)
        return _("Unsubscribed.") + "\n", 200, {"Content-Type": "text/plain; charset=utf-8",
                                                "Content-Language": i18n.current()}
    return render_template("unsubscribed.html", legacy=legacy, erased=sub is None)


@limiter.exempt
def healthz():
    problems = {}
    try:
        db.session.execute(sa.text("SELECT 1"))
    except Exception as exc:  # any failure to answer is what this endpoint reports
        problems["database"] = type(exc).__name__
        db.session.rollback()
    try:
        redis_conn.client(current_app.config["REDIS_URL"]).ping()
    except Exception as exc:
        problems["redis"] = type(exc).__name__
    if problems:
        body = {"status": "unavailable", **{k: f"down: {v}" for k, v in problems.items()}}
        return jsonify(body), 503
    return jsonify(status="ok", database="ok", redis="ok")
