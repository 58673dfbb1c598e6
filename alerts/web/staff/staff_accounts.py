"""The staff accounts page: who has an account, their role, invitations, disable and remove.

Every change is its own POST, checked by `accounts` (the last owner stays; only an owner
touches an owner) before anything changes, and recorded in the audit trail with it.
"""

from __future__ import annotations

import logging
import smtplib

import sqlalchemy as sa
from flask import flash, redirect, render_template, request, url_for

from ... import accounts, audit, invitations
from ...extensions import db
from ...mail.smtp import MailConfigError
from ...models import StaffUser
from ...permissions import DESCRIPTIONS, ROLES, Role, RoleError, parse_role
from ..forms import ButtonForm
from .common import current_staff, staff_actor
from .forms import InviteForm

log = logging.getLogger(__name__)


def _accounts() -> list[StaffUser]:
    return list(db.session.scalars(sa.select(StaffUser).order_by(StaffUser.email)))


def _page(form: InviteForm | None = None, *, error: str | None = None, status: int = 200):
    return render_template("staff/staff_accounts.html", users=_accounts(), form=form or InviteForm(),
                           roles=ROLES, descriptions=DESCRIPTIONS, error=error,
                           me=current_staff(), pending=accounts.pending), status


def _sentence(exc: Exception) -> str:
    message = str(exc)
    return message[:1].upper() + message[1:] + "."


def _status(exc: accounts.StaffError) -> int:
    """403 for a change only an owner may make, 409 for one that conflicts (last owner, taken), else 400."""
    if isinstance(exc, accounts.NotAllowed):
        return 403
    return 409 if isinstance(exc, accounts.LastOwner) or "already exists" in str(exc) else 400


def _refused(exc: accounts.StaffError):
    """A refused change: nothing of it stays, and the page says why."""
    db.session.rollback()
    return _page(error=_sentence(exc), status=_status(exc))


def _my_role() -> Role:
    return Role(current_staff().role)


def _account_or_404(staff_id: int) -> StaffUser:
    return db.get_or_404(StaffUser, staff_id)


def _back():
    return redirect(url_for("staff.staff_accounts"), code=303)


def _send_invitation(user: StaffUser) -> None:
    """Send the invitation now, as a test send goes: the page says whether it went."""
    try:
        invitations.send_invitation(user.id)
    except (OSError, smtplib.SMTPException, MailConfigError) as exc:
        log.warning("invitation to staff account %s not sent: %s", user.id, exc)
        flash(f"The account for {user.email} is made, but the invitation was not sent: the mail server "
              f"could not be reached or refused it ({exc}). Use “Resend invitation”.", "error")
    else:
        flash(f"Invitation sent to {user.email}. Its link works once.", "success")


def staff_accounts():
    return _page()


def staff_invite():
    form = InviteForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        user = accounts.invite(form.email.data, Role(form.role.data), current_staff().email, by=_my_role())
    except accounts.StaffError as exc:
        db.session.rollback()
        return _page(form, error=_sentence(exc), status=_status(exc))
    audit.record(staff_actor(), "staff.invite", user.email, role=user.role)
    db.session.commit()
    _send_invitation(user)
    return _back()


def staff_invite_resend(staff_id: int):
    user = _account_or_404(staff_id)
    if not accounts.pending(user) or user.disabled_at is not None:
        return _page(error=f"{user.email} has no invitation waiting: it was used, or the account is "
                           "disabled.", status=409)
    if user.role == Role.OWNER and _my_role() != Role.OWNER:
        return _refused(accounts.NotAllowed(f"only an owner can change the owner account {user.email}"))
    audit.record(staff_actor(), "staff.invite.resend", user.email)
    db.session.commit()
    _send_invitation(user)
    return _back()


def staff_role(staff_id: int):
    user = _account_or_404(staff_id)
    try:
        role = parse_role(request.form.get("role", ""))
    except RoleError as exc:
        return _page(error=_sentence(exc), status=400)
    before = user.role
    if role == before:
        return _back()
    try:
        accounts.change_role(user, role, by=_my_role())
    except accounts.StaffError as exc:
        return _refused(exc)
    audit.record(staff_actor(), "staff.role", user.email, before=before, after=role.value)
    db.session.commit()
    flash(f"{user.email} is now {role.value}: {DESCRIPTIONS[role]}.", "success")
    return _back()


def staff_disable(staff_id: int):
    user = _account_or_404(staff_id)
    try:
        accounts.disable(user, by=_my_role())
    except accounts.StaffError as exc:
        return _refused(exc)
    audit.record(staff_actor(), "staff.disable", user.email)
    db.session.commit()
    flash(f"{user.email} is disabled: it cannot log in, and its sessions have ended.", "success")
    return _back()


def staff_enable(staff_id: int):
    user = _account_or_404(staff_id)
    try:
        accounts.enable(user, by=_my_role())
    except accounts.StaffError as exc:
        return _refused(exc)
    audit.record(staff_actor(), "staff.enable", user.email)
    db.session.commit()
    flash(f"{user.email} is enabled: it can log in again with its password.", "success")
    return _back()


def staff_remove(staff_id: int):
    """The confirmation step, then the removal."""
    user = _account_or_404(staff_id)
    form = ButtonForm()
    if form.validate_on_submit():
        email = user.email
        try:
            accounts.remove(user, by=_my_role())
        except accounts.StaffError as exc:
            return _refused(exc)
        audit.record(staff_actor(), "staff.remove", email)
        db.session.commit()
        flash(f"The account {email} is removed.", "success")
        return _back()
    status = 400 if form.is_submitted() else 200
    return render_template("staff/staff_remove.html", user=user, form=form), status
