"""Every kind of email the service sends, as the bytes that reached the relay, scores 0.0 with
SpamAssassin's shipped rules (no network tests): a rule that fires is a reason some
receiver's filter holds the mail back."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from alerts.actions.signing import send_signature_confirmation
from alerts.extensions import db
from alerts.models import Action, Signature, Subscriber, utcnow
from alerts.subscribers.confirmations import send_confirmation
from alerts.subscribers.welcome import send_welcome
from alerts.testing.mailcatcher import Received
from tests.helpers import STAFF_EMAIL, blasts, make_alert, seed_actions
from tests.tracking_helpers import send_blast

pytestmark = pytest.mark.slow

SPAMASSASSIN = shutil.which("spamassassin") or "/usr/bin/spamassassin"


def _confirmation() -> None:
    sub = Subscriber(email="new@example.org", status="pending", confirm_nonce="n1")
    db.session.add(sub)
    db.session.commit()
    assert send_confirmation(sub.id)


def _welcome() -> None:
    seed_actions()
    sub = Subscriber(email="welcome@example.org", status="confirmed", confirmed_at=utcnow())
    db.session.add(sub)
    db.session.commit()
    assert send_welcome(sub.id)


def _signature_confirmation() -> None:
    seed_actions()
    action = db.session.scalars(sa.select(Action).order_by(Action.position)).first()
    signature = Signature(action_id=action.id, email="signer@example.org", email_key="signer@example.org",
                          name="Sam Signer", source="action-center")
    db.session.add(signature)
    db.session.commit()
    assert send_signature_confirmation(signature.id)


def _alert() -> None:
    send_blast(1)


def _alert_test_send() -> None:
    blasts.send_test(make_alert(), STAFF_EMAIL)


def _approval_request() -> None:
    from alerts.blasts.approval import send_request

    assert send_request(make_alert(), STAFF_EMAIL, "drafter@example.org")


@dataclass(frozen=True)
class Kind:
    """One kind of email, and how to make the service send one to the catcher."""

    name: str
    send: Callable[[], None]


# Every kind of email the service sends; a new kind is added here.
KINDS = (
    Kind("confirmation", _confirmation),
    Kind("welcome", _welcome),
    Kind("signature confirmation", _signature_confirmation),
    Kind("alert", _alert),
    Kind("alert test send", _alert_test_send),
    Kind("approval request", _approval_request),
)


def spam_report(data: bytes) -> tuple[float, str]:
    """SpamAssassin's score and report for a message, local rules only (-L)."""
    run = subprocess.run([SPAMASSASSIN, "-L", "-t"], input=data, capture_output=True, timeout=120,
                         check=False)
    assert run.returncode in (0, 1), run.stderr.decode(errors="replace")
    out = run.stdout
    # The test report's "Content analysis details:   (0.7 points, 5.0 required)".
    match = re.search(rb"Content analysis details:\s+\((-?\d+(?:\.\d+)?) points", out)
    assert match, out.decode(errors="replace")[-2000:]
    report = out[out.index(b"Content analysis details:"):].decode(errors="replace")
    return float(match.group(1)), report


@pytest.fixture(scope="module")
def _spamassassin() -> None:
    if not os.access(SPAMASSASSIN, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("CI needs SpamAssassin (scripts/setup --test installs Debian's spamassassin)")
        pytest.skip("needs Debian's spamassassin (apt-get install spamassassin)")


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_every_email_scores_zero_with_spamassassin(_spamassassin, app, ctx, smtp, kind: Kind):
    kind.send()
    received: list[Received] = smtp.handler.wait_for(1, timeout=10)
    assert received, f"no {kind.name} email reached the relay"
    score, report = spam_report(received[0].data)
    assert score == 0.0, f"the {kind.name} email scores {score}:\n{report}"
