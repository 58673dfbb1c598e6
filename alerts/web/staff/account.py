"""“Your account”: a staff member's own password (and the slot for their second factor)."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for

from ... import accounts, audit
from ...extensions import db
from ...permissions import DESCRIPTIONS, Role
from . import auth
from .common import current_staff, staff_actor
from .forms import PasswordChangeForm


def _page(form: PasswordChangeForm, status: int = 200):
    user = current_staff()
    return render_template("staff/account.html", form=form, user=user,
                           role_means=DESCRIPTIONS[Role(user.role)]), status


def account():
    return _page(PasswordChangeForm())


def account_password():
    """A new password ends every other session of the account; this one goes on, logged in afresh."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return _page(form, 400)
    user = current_staff()
    if not accounts.verify_password(user, form.current.data):
        form.current.errors = ["That is not your current password."]
        return _page(form, 400)
    try:
        accounts.set_password(user, form.password.data)
    except accounts.StaffError as exc:
        db.session.rollback()
        message = str(exc)
        form.password.errors = [message[:1].upper() + message[1:]]
        return _page(form, 400)
    audit.record(staff_actor(), "staff.password", user.email)
    db.session.commit()
    auth.login(user)  # this session, at the account's new epoch: every other one has ended
    flash("Your password is changed. Every other session of your account has ended.", "success")
    return redirect(url_for("staff.account"), code=303)
