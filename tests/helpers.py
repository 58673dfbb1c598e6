"""Test helpers: the domain steps as a view or command runs them, each committed."""

from __future__ import annotations

from types import SimpleNamespace

from alerts import suppressions
from alerts.accounts import create_staff as _create_staff
from alerts.actions import SEED_ACTIONS  # noqa: F401  (the tests' one import of the seed)
from alerts.actions import seed_actions as _seed_actions
from alerts.blasts import content, control, progress, sending, state
from alerts.blasts.compose import save_alert as _save_alert
from alerts.blasts.dispatch import batch_ranges
from alerts.bounces import processing
from alerts.extensions import db
from alerts.subscribers import confirmations, exporting, privacy


def _committed(fn):
    def run(*args, **kwargs):
        result = fn(*args, **kwargs)
        db.session.commit()
        return result

    run.__name__ = fn.__name__
    return run


# The blast engine, as the staff pages and the CLI drive it.
blasts = SimpleNamespace(
    launch=_committed(control.launch),
    start_blast=_committed(state.start_blast),
    pause=_committed(control.pause),
    relaunch=_committed(control.resume),
    cancel=_committed(control.cancel),
    status=progress.status,
    counts=progress.counts,
    send_batch=sending.send_batch,
    send_test=sending.send_test,
    MessageFactory=content.MessageFactory,
    list_id=content.list_id,
    alert_context=content.alert_context,
    batch_ranges=batch_ranges,
    BlastError=state.BlastError,
)

# Bounces, suppressions and privacy as the receiver, the staff pages and the tasks commit them.
bounces = SimpleNamespace(
    process=_committed(processing.process),
    confirmation_refused=_committed(processing.confirmation_refused),
    suppress_manually=_committed(processing.suppress_manually),
    suppress=_committed(suppressions.add),
    lift=_committed(suppressions.lift),
)
privacy_steps = SimpleNamespace(
    erase_subscriber=_committed(privacy.erase_subscriber),
    export_subscriber_data=privacy.export_subscriber_data,
)
send_confirmation = confirmations.send_confirmation
export_csv = exporting.export_csv

# Steps the tests take directly, committed as their command or view would.

create_staff = _committed(_create_staff)
seed_actions = _committed(_seed_actions)
save_alert = _committed(_save_alert)


# Links for a subscriber id, as an email would carry them (bound to the subscriber's token key).
def _token_key(subscriber_id: int) -> str:
    from alerts.models import Subscriber

    return db.session.get(Subscriber, subscriber_id).token_key


def unsubscribe_token_for(subscriber_id: int) -> str:
    from alerts.subscribers.tokens import make_unsubscribe_token

    return make_unsubscribe_token(_token_key(subscriber_id))


def confirm_token_for(subscriber_id: int, nonce: str) -> str:
    from alerts.subscribers.tokens import make_confirm_token

    return make_confirm_token(_token_key(subscriber_id), nonce)


def apply_signups() -> list[int]:
    """What the handle_signup tasks do for every signup received so far, each committed."""
    import sqlalchemy as sa

    from alerts.models import SignupAttempt

    done = []
    for attempt_id in db.session.scalars(sa.select(SignupAttempt.id).order_by(SignupAttempt.id)).all():
        subscriber_id = confirmations.handle_signup(attempt_id)
        db.session.commit()
        if subscriber_id is not None:
            done.append(subscriber_id)
    return done
