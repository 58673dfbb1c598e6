"""The confirmation email of double opt-in, built through the one rendering path."""

from __future__ import annotations

from flask import current_app

from .. import queueing, suppressions
from ..extensions import db
from ..mail import smtp
from ..mail.context import external_url, org_context
from ..mail.dkim import signer_for
from ..mail.mime import build_message, domain_of, format_from, new_message_id
from ..mail.rendering import compiled
from ..mail.signed_ids import return_path
from ..models import Subscriber
from .subscriptions import AWAITING_CONFIRMATION, release_cooldown, take_attempt
from .tokens import make_confirm_token

SEND_CONFIRMATION = "alerts.tasks.send_confirmation"
HANDLE_SIGNUP = "alerts.tasks.handle_signup"
CONFIRM_SLOTS = ("confirm_url", "email")


def queue(subscriber_id: int) -> None:
    """Send the confirmation once the signup commits; if the broker is away, free the cooldown."""
    queueing.after_commit(SEND_CONFIRMATION, subscriber_id,
                          on_broker_down=lambda: release_cooldown([subscriber_id]))


def queue_signup(attempt_id: int) -> None:
    """Decide a recorded signup in a worker once it commits; if the broker is away, the sweep does."""
    queueing.after_commit(HANDLE_SIGNUP, attempt_id)


def handle_signup(attempt_id: int) -> int | None:
    """Apply a recorded signup and queue its confirmation email, if one may go; the caller commits."""
    subscriber_id = take_attempt(attempt_id)
    if subscriber_id is not None:
        queue(subscriber_id)
    return subscriber_id


def send_confirmation(subscriber_id: int) -> bool:
    """Mail the confirmation link; False when there is no longer anyone to confirm."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status not in AWAITING_CONFIRMATION or sub.confirm_nonce is None:
        return False
    if suppressions.is_suppressed(sub.email):
        return False
    cfg = current_app.config
    token = make_confirm_token(sub.token_key, sub.confirm_nonce)
    rendered = compiled("confirm", CONFIRM_SLOTS, org_context).personalize(
        confirm_url=external_url("public.confirm", token=token), email=sub.email
    )
    data = build_message(
        from_header=format_from(cfg["MAIL_FROM"]),
        to=sub.email,
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=new_message_id(domain_of(cfg["MAIL_FROM"])),
        extra_headers=[("Auto-Submitted", "auto-generated")],
    )
    signed = signer_for(current_app).sign(data)
    smtp.send_one(cfg["SMTP_URL"], return_path("c", sub.id), sub.email, signed, cfg["SMTP_TIMEOUT"])
    return True
