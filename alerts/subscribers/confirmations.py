"""The confirmation email of double opt-in, built through the one rendering path."""

from __future__ import annotations

import sqlalchemy as sa

from .. import queueing, tasknames
from ..extensions import db
from ..mail.context import external_url, org_context
from ..mail.rendering import compiled
from ..mail.signed_ids import return_path
from ..models import Subscriber
from . import emails
from .subscriptions import AWAITING_CONFIRMATION, release_cooldown, take_attempt
from .tokens import make_confirm_token

CONFIRM_SLOTS = ("confirm_url", "email", emails.UNSUBSCRIBE_SLOT)
# The light queue of signup attempts' ids (`queueing.push_after_commit`), drained by DRAIN_SIGNUPS.
SIGNUPS = "signups"
DRAIN_BATCH = 100


def queue(subscriber_id: int) -> None:
    """Send the confirmation once the signup commits; if the broker is away, free the cooldown."""
    queueing.after_commit(tasknames.SEND_CONFIRMATION, subscriber_id,
                          on_broker_down=lambda: release_cooldown([subscriber_id]))


def queue_signup(attempt_id: int) -> None:
    """Decide a recorded signup in a worker once it commits: its id pushed onto the signups'
    light queue (a bare LPUSH, no Celery publish); if Redis is away, the sweep applies the row."""
    queueing.push_after_commit(SIGNUPS, attempt_id, wake=tasknames.DRAIN_SIGNUPS)


def take_signups(*, drainer: bool = True) -> list[int]:
    """The next batch of queued signup attempts (oldest first); each is the caller's to apply."""
    return queueing.take(SIGNUPS, DRAIN_BATCH, drainer=drainer)


def rest_signups() -> None:
    """The drainer stops (see `queueing.rest`)."""
    queueing.rest(SIGNUPS, wake=tasknames.DRAIN_SIGNUPS)


def handle_signup(attempt_id: int) -> int | None:
    """Apply a recorded signup and queue its confirmation email, if one may go; the caller commits."""
    subscriber_id = take_attempt(attempt_id)
    if subscriber_id is not None:
        queue(subscriber_id)
    return subscriber_id


def signup_language(subscriber_id: int) -> str | None:
    """The language of the page signed up on (a known address's latest signup, kept pending
    until its owner confirms), else the subscriber's own."""
    row = db.session.execute(sa.select(Subscriber.language, Subscriber.pending_profile)
                             .where(Subscriber.id == subscriber_id)).one_or_none()
    if row is None:
        return None
    return (row.pending_profile or {}).get("language") or row.language


@emails.email("confirmation", task=tasknames.SEND_CONFIRMATION, subscriber=True, language=signup_language)
def send_confirmation(subscriber_id: int) -> emails.Email | None:
    """Mail the confirmation link; None (nothing sent) when there is no longer anyone to confirm."""
    sub = db.session.get(Subscriber, subscriber_id)
    if sub is None or sub.status not in AWAITING_CONFIRMATION or sub.confirm_nonce is None:
        return None
    token = make_confirm_token(sub.token_key, sub.confirm_nonce)
    return emails.Email(
        to=sub.email,
        compiled=compiled("confirm", CONFIRM_SLOTS, org_context),
        values={"confirm_url": external_url("public.confirm", token=token)},
        token_key=sub.token_key,
        return_path=return_path("c", sub.id),
    )
