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

import alerts.tasks  # noqa: F401 - what a worker imports: every kind registered
from alerts.subscribers import emails
from alerts.testing.mailcatcher import Received
from tests.helpers import seed_actions
from tests.tracking_helpers import send_blast

pytestmark = pytest.mark.slow

SPAMASSASSIN = shutil.which("spamassassin") or "/usr/bin/spamassassin"


def _registered(name: str) -> Callable[[], None]:
    """A kind from the registry, sent as tests/test_emails.py's case for it sends it."""
    def send() -> None:
        from tests.test_emails import CASES

        args, _to = CASES[name](1)
        assert emails.kind(name).send(*args) is True

    return send


def _in_spanish(name: str) -> Callable[[], None]:
    """A reader's own kind as one who reads Spanish gets it (the subscriber's language, or the
    page's for a signature)."""
    def send() -> None:
        from alerts.extensions import db
        from alerts.models import Subscriber
        from tests.test_emails import CASES

        args, _to = CASES[name](1)
        if emails.kind(name).subscriber:
            db.session.get_one(Subscriber, args[0]).language = "es"
            db.session.commit()
        else:
            args = (*args, "es")
        assert emails.kind(name).send(*args) is True

    return send


SPANISH = ("confirmation", "welcome", "signature_confirmation")


def _alert() -> None:
    send_blast(1)


def _letter(digest: bool = False) -> Callable[[], None]:
    """A letter to a decision-maker, as one signer's (or, as a digest, three signers') email."""
    def send() -> None:
        import sqlalchemy as sa
        from flask import current_app

        from alerts.actions import letters
        from alerts.extensions import db
        from alerts.models import LetterDelivery, utcnow
        from tests.test_letters import SENATOR, _sign, letter_action

        current_app.config["LETTER_DELIVERY"] = "digest" if digest else "each"
        try:
            action = letter_action(SENATOR)
            for n, name in enumerate(["Ana Ruiz", "Ben Okafor", "Chen Li"][: 3 if digest else 1]):
                _sign(action, name, f"signer{n}@example.net",
                      comment="As a foster parent, I have seen why this matters.")
            db.session.execute(sa.update(LetterDelivery).values(due_at=utcnow()))
            db.session.commit()
            letters.send_due()  # (or a worker, if one runs: the test reads what reaches the relay)
        finally:
            current_app.config["LETTER_DELIVERY"] = "each"

    return send


@dataclass(frozen=True)
class Kind:
    """One kind of email, and how to make the service send one to the catcher."""

    name: str
    send: Callable[[], None]


# Every kind the registry holds (a kind added later is scored without a line here), the
# alert, which the blast engine writes outside the registry, and the readers' own in Spanish.
KINDS = (*(Kind(name, _registered(name)) for name in sorted(emails.KINDS)), Kind("alert", _alert),
         Kind("letter", _letter()), Kind("letter-digest", _letter(digest=True)),
         *(Kind(f"{name}-es", _in_spanish(name)) for name in SPANISH))


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
    seed_actions()
    kind.send()
    received: list[Received] = smtp.handler.wait_for(1, timeout=10)
    assert received, f"no {kind.name} email reached the relay"
    score, report = spam_report(received[0].data)
    assert score == 0.0, f"the {kind.name} email scores {score}:\n{report}"
    if kind.name.endswith("-es"):
        assert received[0].message["Content-Language"] == "es"
