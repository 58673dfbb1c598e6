"""An invitation's link: the invited person sets their password, and is logged in.

Open without a login (the token is the credential) and rate-limited per IP, as the login is.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for

from ... import accounts, audit
from ...audit import Actor
from ...extensions import db, limiter
from . import auth
from .forms import NewPasswordForm


def _rate_limit() -> str:
    return current_app.config["STAFF_LOGIN_RATE_LIMIT"]


@limiter.limit(_rate_limit, deduct_when=lambda r: r.status_code >= 400)
def invite(token: str):
    try:
        user = accounts.invited_account(token)
    except accounts.StaffError as exc:
        return render_template("staff/invite.html", error=str(exc), form=None), 400
    form = NewPasswordForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("staff/invite.html", form=form, user=user), 400 if form.is_submitted() else 200
    try:
        accounts.accept_invite(token, form.password.data)
    except accounts.StaffError as exc:
        db.session.rollback()
        message = str(exc)
        form.password.errors = [message[:1].upper() + message[1:]]
        return render_template("staff/invite.html", form=form, user=user), 400
    audit.record(Actor("staff", user.email, request.remote_addr), "staff.invite.accept", user.email)
    db.session.commit()
    auth.login(user)
    flash("Your password is set and you are logged in. Welcome.", "success")
    return redirect(url_for("staff.dashboard"), code=303)
