"""Test helpers: requests as a browser makes them, and domain steps as a view or command runs them."""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import SimpleNamespace

import sqlalchemy as sa

from alerts import audit, suppressions
from alerts.accounts import create_staff as _create_staff
from alerts.actions import SEED_ACTIONS  # noqa: F401  (the tests' one import of the seed)
from alerts.actions import seed_actions as _seed_actions
from alerts.blasts import approval, content, control, progress, sending, state
from alerts.blasts.compose import save_alert as _save_alert
from alerts.blasts.dispatch import batch_ranges
from alerts.bounces import processing
from alerts.extensions import db
from alerts.models import Alert, StaffUser, Subscriber
from alerts.permissions import Role
from alerts.subscribers import confirmations, exporting, privacy
from alerts.testing.mailcatcher import Received


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


APPROVER_EMAIL = "approver@example.org"


def approve(alert_id: int, by: str = APPROVER_EMAIL) -> None:
    """A second staff member with send permission approves the alert as it is now (committed):
    a blast to APPROVAL_MIN_RECIPIENTS or more starts only then (alerts.blasts.approval)."""
    if db.session.scalar(sa.select(StaffUser.id).where(StaffUser.email == by)) is None:
        _create_staff(by, "approver password 1", role=Role.SENDER)
    alert = db.session.get(Alert, alert_id)
    count = state.recipient_count(alert)
    parts = approval.approve(alert_id, by, approval.digest(alert), count)
    # recorded as `alerts alert approve --by` records it: the record names what changes later
    audit.record(audit.Actor("cli", "cli:tests"), approval.APPROVE, approval.target(alert_id), by=by,
                 digest=alert.approved_digest, recipients=count, parts=parts)
    db.session.commit()


# Requests as a browser makes them.
STAFF_EMAIL = "staff@example.org"
STAFF_PASSWORD = "correct horse battery"
STAFF_IP = "203.0.113.9"


def csrf_token(client, path: str = "/") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def subscribe(client, email: str, *, website: str = "", ip: str = "198.51.100.7", headers=None,
              apply: bool = True, follow: bool = True):
    """Post the signup form, following the redirect to the answer page as a browser does; then
    (unless `apply=False`) decide the signup as its task would, so the test sees the outcome at
    once (a running worker may get there first: once either way)."""
    token = csrf_token(client)
    resp = client.post(
        "/subscribe",
        data={"email": email, "website": website, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
        headers=headers or {},
        follow_redirects=follow,
    )
    if apply:
        with client.application.app_context():
            apply_signups()
    return resp


def link_in(received: Received, path: str) -> str:
    """The first link to `path` in the text part of a received message."""
    text = received.message.get_body(("plain",)).get_content()
    match = re.search(rf"https?://\S+{re.escape(path)}\S+", text)
    assert match, f"no {path} link in:\n{text}"
    return match.group(0)


def log_in(client, email=STAFF_EMAIL, password=STAFF_PASSWORD, next_url=None, ip=STAFF_IP):
    """Post the staff login form with the token from the page a browser would be on."""
    # Logged in already, the login page redirects to the dashboard, which has a token too.
    page = client.get("/staff/login").headers.get("Location", "/staff/login")
    data = {"email": email, "password": password, "csrf_token": csrf_token(client, page)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/staff/login", data=data, environ_base={"REMOTE_ADDR": ip})


def post(client, path, data=None, page="/staff/"):
    """A form post the way a browser makes it: with the CSRF token from a staff page."""
    payload = dict(data or {})
    payload["csrf_token"] = csrf_token(client, page)
    return client.post(path, data=payload)


# Data in bulk, alerts, waiting for a blast to end.


def add_confirmed(n: int, prefix: str = "sub") -> list[str]:
    emails = [f"{prefix}{i:05d}@example.org" for i in range(n)]
    db.session.execute(
        sa.insert(Subscriber),
        [{"email": e, "status": "confirmed"} for e in emails],
    )
    db.session.commit()
    return emails


def make_alert(subject: str = "Act now for kids", slugs: list[str] | None = None) -> int:
    seed_actions()
    alert = save_alert(
        None,
        subject=subject,
        intro_md="Thank you for **standing up** for children.",
        preheader="Two minutes that matter",
        action_slugs=slugs,
    )
    return alert.id


def wait_for_state(alert_id: int, states=("sent",), timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        status = blasts.status(alert_id)
        if status["state"] in states or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
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
    from alerts.models import SignupAttempt

    done = []
    for attempt_id in db.session.scalars(sa.select(SignupAttempt.id).order_by(SignupAttempt.id)).all():
        subscriber_id = confirmations.handle_signup(attempt_id)
        db.session.commit()
        if subscriber_id is not None:
            done.append(subscriber_id)
    return done
