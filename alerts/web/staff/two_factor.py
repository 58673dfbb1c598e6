"""A staff member's own two-factor login: set it up (QR code, first code), new recovery codes, off;
and an admin's reset of someone else's, when they have lost their phone and their codes."""

from __future__ import annotations

import logging

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for

from ... import twofactor
from ...accounts import end_sessions
from ...audit import record
from ...extensions import db, limiter
from ...models import StaffUser
from ...permissions import ROLES, Role
from . import auth
from .common import current_staff, staff_actor
from .forms import CodeForm

log = logging.getLogger(__name__)

# The secret being set up, kept until its first code is right (so a reload shows the same one).
SESSION_SETUP = "staff_2fa_setup"
WRONG_CODE = "That code is not right, or was used already. Enter the 6 digits your app shows now."


def _rate_limit() -> str:
    return current_app.config["STAFF_LOGIN_RATE_LIMIT"]


def _setup_secret(user_id: int) -> str:
    pending = session.get(SESSION_SETUP)
    if isinstance(pending, dict) and pending.get("id") == user_id and isinstance(pending.get("secret"), str):
        return pending["secret"]
    secret = twofactor.new_secret()
    session[SESSION_SETUP] = {"id": user_id, "secret": secret}
    return secret


def _page(*, status: int = 200, codes: list[str] | None = None, error: str | None = None,
          error_form: str | None = None):
    user = current_staff()
    required = twofactor.required(user, current_app.config)
    context: dict = {"user": user, "required": required, "codes": codes, "error": error,
                     "error_form": error_form, "enabled": twofactor.enabled(user)}
    if codes is None and not context["enabled"]:
        secret = _setup_secret(user.id)
        uri = twofactor.provisioning_uri(user.email, secret, current_app.config.get("ORG_NAME"))
        context.update(secret=secret, secret_groups=[secret[i:i + 4] for i in range(0, len(secret), 4)],
                       qr=twofactor.qr_data_uri(uri), form=CodeForm(prefix="setup"))
    elif codes is None:
        context.update(codes_left=twofactor.codes_left(user), regen_form=CodeForm(prefix="regen"),
                       off_form=CodeForm(prefix="off"))
    return render_template("staff/account_2fa.html", **context), status


def _wrong_code(form_name: str):
    """A wrong code from a logged-in session counts toward the account's lockout too."""
    user = current_staff()
    if auth.record_failure(user.email, None, auth.SECOND_FACTOR):
        end_sessions(user.id)
        db.session.commit()
        auth.logout()
        flash("Too many wrong codes: every session of this account has ended. Log in again later.", "error")
        return redirect(url_for("staff.login"), code=303)
    return _page(status=400, error=WRONG_CODE, error_form=form_name)


def account_2fa():
    """Set up (or look at) the account's own two-factor login."""
    return _page()


@limiter.limit(_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def account_2fa_enable():
    """Turn 2FA on once the first code is right, and show the ten recovery codes this once."""
    user = current_staff()
    if twofactor.enabled(user):
        flash("Two-factor login is on already.", "info")
        return redirect(url_for("staff.account_2fa"), code=303)
    form = CodeForm(prefix="setup")
    if not form.validate_on_submit():
        return _page(status=400, error="Enter the 6 digits your app shows.", error_form="setup")
    try:
        codes = twofactor.enable(user, _setup_secret(user.id), form.code.data)
    except twofactor.TwoFactorError as exc:
        db.session.rollback()
        return _page(status=400, error=str(exc), error_form="setup")
    record(staff_actor(), "staff.2fa.enable", user.email)
    db.session.commit()
    session.pop(SESSION_SETUP, None)
    return _page(codes=codes)


@limiter.limit(_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def account_2fa_recovery_codes():
    """Ten new recovery codes (the old ones stop working); needs a current code from the app."""
    user = current_staff()
    form = CodeForm(prefix="regen")
    if not twofactor.enabled(user):
        return _page(status=400, error="Two-factor login is not on for this account.", error_form="regen")
    if not form.validate_on_submit() or not twofactor.verify(user, form.code.data):
        return _wrong_code("regen")
    codes = twofactor.regenerate_codes(user)
    record(staff_actor(), "staff.2fa.recovery_codes", user.email)
    db.session.commit()
    return _page(codes=codes)


@limiter.limit(_rate_limit, methods=["POST"], deduct_when=lambda r: r.status_code >= 400)
def account_2fa_disable():
    """Turn 2FA off (needs a current code), unless the account's role must use it."""
    user = current_staff()
    form = CodeForm(prefix="off")
    if twofactor.required(user, current_app.config):
        return _page(status=403, error=f"Two-factor login stays on: every {user.role} account must use it "
                     "(STAFF_REQUIRE_2FA).", error_form="off")
    if not twofactor.enabled(user):
        return redirect(url_for("staff.account_2fa"), code=303)
    if not form.validate_on_submit() or not twofactor.verify(user, form.code.data):
        return _wrong_code("off")
    twofactor.disable(user)
    record(staff_actor(), "staff.2fa.disable", user.email)
    db.session.commit()
    flash("Two-factor login is off: this account logs in with its password alone.", "success")
    return redirect(url_for("staff.account_2fa"), code=303)


def staff_2fa_reset(staff_id: int):
    """An admin turns off someone else's 2FA (a lost phone, no codes left); their sessions end."""
    actor = current_staff()
    user = db.session.get(StaffUser, staff_id)
    if user is None:
        abort(404)
    back = auth.safe_next(request.form.get("next")) or url_for("staff.dashboard")
    if ROLES.index(Role(user.role)) > ROLES.index(Role(actor.role)):
        return _refused(f"{user.email} is an {user.role}: only an owner can reset their two-factor login.")
    if not twofactor.enabled(user):
        flash(f"{user.email} has no two-factor login: nothing to reset.", "info")
        return redirect(back, code=303)
    twofactor.disable(user)
    end_sessions(user.id)
    record(staff_actor(), "staff.2fa.reset", user.email)
    db.session.commit()
    flash(f"Two-factor login reset for {user.email}, and every session of it ended: they set it up again "
          "at their next login.", "success")
    return redirect(back, code=303)


def _refused(message: str):
    return render_template("error.html", code=403, title="Not allowed", message=message), 403
