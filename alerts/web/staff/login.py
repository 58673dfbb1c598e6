"""Logging in and out, with the second factor when the account has one; the per-IP limit and the
per-account lockouts are checked here."""

from __future__ import annotations

import logging

from flask import current_app, flash, redirect, render_template, request, session, url_for

from ... import twofactor
from ...accounts import check_password, end_sessions, end_sessions_for
from ...audit import Actor, record
from ...extensions import db, limiter
from ...models import StaffUser, utcnow
from ...words import plural
from . import auth
from .common import staff_actor
from .forms import CodeForm, LoginForm

log = logging.getLogger(__name__)
BAD_LOGIN = "That email and password don't match a staff account."
BAD_CODE = ("That code is not right, or was used already. Enter the 6 digits your app shows now, "
            "or one of your recovery codes.")
LOCKED = ("Too many failed logins for this account. It is locked for another {minutes}; "
          "try again later or ask another staff member to check the account.")


def _login_rate_limit() -> str:
    return current_app.config["STAFF_LOGIN_RATE_LIMIT"]


def _locked_page(form: LoginForm, seconds: int):
    minutes = max(1, -(-seconds // 60))
    error = LOCKED.format(minutes=plural(minutes, "minute"))
    return render_template("staff/login.html", form=form, error=error), 429


def _second_factor_locked(seconds: int | None = None):
    """The account is locked after wrong codes: the pending login ends, back to the login form."""
    auth.end_second_factor()
    seconds = seconds or current_app.config["STAFF_LOCKOUT_SECONDS"]
    return _locked_page(LoginForm(formdata=None), seconds)


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
        record(Actor("staff", email, ip), "login.failed")  # the address tried; never the password
        if auth.record_failure(email, ip):
            # Whoever may hold a session of this account (a stolen cookie) is logged out too.
            end_sessions_for(email)
            db.session.commit()
            seconds = auth.lockout_seconds_left(email, ip) or current_app.config["STAFF_LOCKOUT_SECONDS"]
            return _locked_page(form, seconds)
        db.session.commit()
        log.info("failed staff login from %s", request.remote_addr)
        return render_template("staff/login.html", form=form, error=BAD_LOGIN), 401
    auth.clear_failures(email, ip)
    next_url = auth.safe_next(form.next.data)
    if twofactor.enabled(user):
        db.session.commit()  # a rehashed password (the login time is set again once the code is right)
        if seconds := auth.lockout_seconds_left(email, None, auth.SECOND_FACTOR):
            return _locked_page(form, seconds)
        auth.begin_second_factor(user, next_url)
        return redirect(url_for("staff.login_2fa"), code=303)
    record(Actor("staff", user.email, ip), "login", second_factor="none")
    db.session.commit()  # the login time, and a rehashed password
    auth.login(user)
    return redirect(next_url or url_for("staff.dashboard"), code=303)


def _code_page(form: CodeForm, user: StaffUser, error: str | None = None, status: int = 200):
    return render_template("staff/login_2fa.html", form=form, email=user.email, error=error), status


@limiter.limit(_login_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def login_2fa():
    """The second step: a code from the app, or a recovery code; wrong ones count to a lockout."""
    pending = auth.pending_second_factor()
    if pending is None:
        if auth.SESSION_PENDING in session:
            auth.end_second_factor()
            flash("That login took too long. Please log in again.", "info")
        return redirect(url_for("staff.login"), code=303 if request.method == "POST" else 302)
    user, next_url = pending
    form = CodeForm()
    if request.method == "GET":
        return _code_page(form, user)
    if not form.validate_on_submit():
        return _code_page(form, user, status=400)
    ip = request.remote_addr
    if seconds := auth.lockout_seconds_left(user.email, None, auth.SECOND_FACTOR):
        return _second_factor_locked(seconds)
    actor = Actor("staff", user.email, ip)
    code = form.code.data
    by_recovery = not twofactor.looks_like_totp(code)
    ok = twofactor.use_recovery_code(user, code) if by_recovery else twofactor.verify(user, code)
    if not ok:
        record(actor, "login.2fa_failed")  # never the code itself
        if auth.record_failure(user.email, None, auth.SECOND_FACTOR):
            end_sessions(user.id)  # the pending login, and any session of the account, end here
            db.session.commit()
            return _second_factor_locked()
        db.session.commit()
        return _code_page(form, user, error=BAD_CODE, status=401)
    left = twofactor.codes_left(user)
    if by_recovery:
        record(actor, "login.recovery_code_used", codes_left=left)
    record(actor, "login", second_factor="recovery_code" if by_recovery else "totp")
    user.last_login_at = utcnow()
    db.session.commit()
    auth.clear_failures(user.email, None, auth.SECOND_FACTOR)
    auth.login(user)
    if by_recovery:
        flash(f"You logged in with a recovery code; {plural(left, 'code')} left. Each works once: "
              "make new ones on your two-factor page when few are left.", "info")
    return redirect(next_url or url_for("staff.dashboard"), code=303)


def logout():
    record(staff_actor(), "logout")
    auth.logout()
    db.session.commit()
    flash("You are logged out.", "info")
    return redirect(url_for("staff.login"), code=303)


