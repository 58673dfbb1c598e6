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
from ..models import Subscriber, SubscriberStatus
from .subscriptions import release_cooldown
from .tokens import make_confirm_token

SEND_CONFIRMATION = "alerts.tasks.send_confirmation"
CONFIRM_SLOTS = ("confirm_url", "email")


def queue(subscriber_id: int) -> None:
    """Send the confirmation once the signup commits; if the broker is away, free the cooldown."""
    queueing.after_commit(SEND_CONFIRMATION, subscriber_id,
                          on_broker_down=lambda: release_cooldown([subscriber_id]))


def send_confirmation(subscriber_id: int) -> bool:
    """Mail the confirmation link; False when there is no longer anyone to confirm."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status != SubscriberStatus.PENDING or sub.confirm_nonce is None:
        return False
    if suppressions.is_suppressed(sub.email):
        return False
    cfg = current_app.config
    token = make_confirm_token(sub.id, sub.confirm_nonce)
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
