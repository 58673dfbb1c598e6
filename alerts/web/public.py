"""The public side: the Action Center, the signup form, confirm and unsubscribe links."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template, request
from flask_wtf import FlaskForm
from wtforms import EmailField, StringField

from .. import actions, redis_conn
from ..extensions import csrf, db, limiter
from ..models import Subscriber
from ..subscribers import confirmations, subscriptions
from ..subscribers.tokens import TokenError, read_confirm_token, read_unsubscribe_token

log = logging.getLogger(__name__)
bp = Blueprint("public", __name__)


class SubscribeForm(FlaskForm):
    email = EmailField("Email address")
    website = StringField("Please leave this field empty")  # the honeypot


def client_request() -> subscriptions.Request:
    return subscriptions.Request(ip=request.remote_addr, user_agent=request.user_agent.string)


@bp.get("/")
def index():
    return render_template("index.html", actions=actions.open_actions(), form=SubscribeForm())


def _subscribe_rate_limit() -> str:
    return current_app.config["SUBSCRIBE_RATE_LIMIT"]


@bp.post("/subscribe")
@limiter.limit(_subscribe_rate_limit)
def subscribe():
    form = SubscribeForm()
    if not form.validate_on_submit():  # only the CSRF token is validated here
        abort(400)
    if (form.website.data or "").strip():
        # A bot filled the honeypot: it sees the usual answer and nothing happens.
        log.info("honeypot filled from %s", request.remote_addr)
        return render_template("subscribe_done.html")
    try:
        email = subscriptions.normalize_email(form.email.data or "")
    except subscriptions.InvalidEmail as exc:
        return (
            render_template("index.html", actions=actions.open_actions(), form=form, email_error=str(exc)),
            400,
        )
    subscriber_id = subscriptions.request_subscription(email, client_request())
    if subscriber_id is not None:
        confirmations.queue(subscriber_id)
    db.session.commit()
    # The same page whether the address was new, pending, confirmed or unsubscribed.
    return render_template("subscribe_done.html")


def _token_error_page(exc: TokenError, kind: str):
    return render_template("token_error.html", reason=exc.reason, kind=kind), (
        410 if exc.reason in ("expired", "used") else 400
    )


@bp.route("/confirm/<token>", methods=["GET", "POST"])
@csrf.exempt  # the signed token is the credential; there is no session to forge
def confirm(token: str):
    if request.method == "GET":
        try:
            read_confirm_token(token)
        except TokenError as exc:
            return _token_error_page(exc, "confirm")
        return render_template("confirm.html", token=token)
    try:
        outcome = subscriptions.confirm(token, client_request())
    except TokenError as exc:
        db.session.rollback()
        return _token_error_page(exc, "confirm")
    db.session.commit()
    return render_template("confirmed.html", already=outcome == subscriptions.ConfirmOutcome.ALREADY)


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt  # RFC 8058 one-click comes with no cookie and no form token
def unsubscribe(token: str):
    try:
        subscriber_id = read_unsubscribe_token(token)
    except TokenError as exc:
        return _token_error_page(exc, "unsubscribe")
    if request.method == "GET":
        sub = db.session.get(Subscriber, subscriber_id)
        return render_template("unsubscribe.html", token=token, subscriber=sub)
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    subscriptions.unsubscribe(
        subscriber_id, client_request(), via="one-click" if one_click else "link"
    )
    db.session.commit()
    if one_click:
        return "Unsubscribed.\n", 200, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("unsubscribed.html")


@bp.get("/healthz")
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


# The action pages (sign, thank you, confirm a signature) add their routes to `bp`.
from . import action_pages  # noqa: E402, F401
