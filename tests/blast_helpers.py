"""Shared set-up for blast tests: subscribers in bulk, an alert, waiting for the end."""

from __future__ import annotations

import time

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Subscriber
from tests.helpers import blasts, save_alert, seed_actions


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
