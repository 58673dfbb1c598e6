"""The invitation to a new staff account: the email that carries its one-use link.

Written to a staff member, not a subscriber (`subscriber=False`): there is no list to leave,
so it carries no unsubscribe link and no List-Unsubscribe header, as the test send does not.
"""

from __future__ import annotations

from flask import current_app

from . import tasknames
from .accounts import invite_token, pending
from .extensions import db
from .mail.context import external_url, org_context
from .mail.rendering import compiled
from .mail.signed_ids import envelope_sender
from .models import StaffUser
from .permissions import DESCRIPTIONS, Role
from .subscribers import emails

INVITE_SLOTS = ("invite_url", "email", "invited_by", "role", "role_means", "days")


@emails.email("staff_invitation", task=tasknames.SEND_STAFF_INVITATION, subscriber=False)
def send_invitation(staff_id: int) -> emails.Email | None:
    """The invited account's link to set its password; None once it has one (or is gone)."""
    user = db.session.get(StaffUser, staff_id)
    if user is None or not pending(user) or user.disabled_at is not None:
        return None
    days = max(1, current_app.config["STAFF_INVITE_MAX_AGE_SECONDS"] // 86400)
    role = Role(user.role)
    return emails.Email(
        to=user.email,
        compiled=compiled("staff_invite", INVITE_SLOTS, org_context),
        values={"invite_url": external_url("staff.invite", token=invite_token(user)),
                "invited_by": user.invited_by or "an owner", "role": role.value,
                "role_means": DESCRIPTIONS[role], "days": f"{days} day{'s' if days != 1 else ''}"},
        return_path=envelope_sender(current_app.config),
    )
