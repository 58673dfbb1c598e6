"""One-off emails to one person (confirmations), built through the same rendering path."""

from __future__ import annotations

from flask import current_app, url_for

from . import mailer
from .extensions import db
from .messages import build_message, domain_of, format_from, new_message_id
from .models import Subscriber, SubscriberStatus
from .rendering import CompiledEmail, compile_email
from .subscriptions import is_suppressed
from .tokens import make_confirm_token


def external_url(endpoint: str, **values: str) -> str:
    """Links in emails use BASE_URL, never the host of whatever request is running."""
    with current_app.test_request_context(base_url=current_app.config["BASE_URL"]):
        return url_for(endpoint, _external=True, **values)


def org_context() -> dict:
    cfg = current_app.config
    return {
        "org_name": cfg["ORG_NAME"],
        "org_postal_address": cfg["ORG_POSTAL_ADDRESS"],
        "base_url": cfg["BASE_URL"],
    }


def compiled(name: str, slots: tuple[str, ...]) -> CompiledEmail:
    """Compiled once per process and template: premailer stays off the per-message path."""
    cache = current_app.extensions.setdefault("alerts.compiled_emails", {})
    key = (name, slots)
    if key not in cache:
        cache[key] = compile_email(current_app.jinja_env, name, slots, **org_context())
    return cache[key]


def send_confirmation(subscriber_id: int) -> bool:
    """Mail the confirmation link; False when there is no longer anyone to confirm."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status != SubscriberStatus.PENDING or sub.confirm_nonce is None:
        return False
    if is_suppressed(sub.email):
        return False
    cfg = current_app.config
    token = make_confirm_token(sub.id, sub.confirm_nonce)
    rendered = compiled("confirm", ("confirm_url", "email")).personalize(
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
    from .verp import return_path

    mailer.send_one(cfg["SMTP_URL"], return_path("c", sub.id), sub.email, sign(data), cfg["SMTP_TIMEOUT"])
    return True


def sign(data: bytes) -> bytes:
    from .dkim_signing import signer_for

    signer = signer_for(current_app)
    return signer.sign(data) if signer else data
