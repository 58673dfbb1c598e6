"""Logging in and out; the per-IP limit and the per-account lockout are checked here."""

from __future__ import annotations

import logging

from flask import current_app, flash, redirect, render_template, request, url_for

from ...accounts import check_password, end_sessions_for
from ...extensions import db, limiter
from ...words import plural
from . import auth
from .forms import LoginForm

log = logging.getLogger(__name__)
BAD_LOGIN = "That email and password don't match a staff account."
LOCKED = ("Too many failed logins for this account. It is locked for another {minutes}; "
          "try again later or ask another staff member to check the account.")


def _login_rate_limit() -> str:
    return current_app.config["STAFF_LOGIN_RATE_LIMIT"]


def _locked_page(form: LoginForm, seconds: int):
    minutes = max(1, -(-seconds // 60))
    error = LOCKED.format(minutes=plural(minutes, "minute"))
    return render_template("staff/login.html", form=form, error=error), 429


@limiter.limit(_login_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def login():
    form = LoginForm()
    if request.method == "GET":
        if auth.current_staff() is not None:
            return redirect(auth.safe_next(request.args.get("next")) or url_for("staff.dashboard"))
        form.next.data = auth.safe_next(request.args.get("next")) or ""
        return render_template("staff/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400
    email = form.email.data.strip().lower()
    ip = request.remote_addr
    if seconds := auth.lockout_seconds_left(email, ip):
        return _locked_page(form, seconds)
    user = check_password(email, form.password.data)
    if user is None:
        if auth.record_failure(email, ip):
            # Whoever may hold a session of this account (a stolen cookie) is logged out too.
            end_sessions_for(email)
            db.session.commit()
            seconds = auth.lockout_seconds_left(email, ip) or current_app.config["STAFF_LOCKOUT_SECONDS"]
            return _locked_page(form, seconds)
        log.info("failed staff login from %s", request.remote_addr)
        return render_template("staff/login.html", form=form, error=BAD_LOGIN), 401
    db.session.commit()  # the login time, and a rehashed password
    auth.clear_failures(email, ip)
    auth.login(user)
    return redirect(auth.safe_next(form.next.data) or url_for("staff.dashboard"), code=303)


def logout():
    auth.logout()
    db.session.commit()
    flash("You are logged out.", "info")
    return redirect(url_for("staff.login"), code=303)


