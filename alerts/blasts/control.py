"""What staff and operators do to a blast: launch, pause, resume, cancel.

The caller commits; the dispatch task is queued after that commit (if the broker is away
then, the sweep re-dispatches the blast within BLAST_STALL_SECONDS).
"""

from __future__ import annotations

from flask import current_app

from .. import queueing, tasknames
from ..config import POSTAL_ADDRESS_REQUIRED, postal_address_missing
from . import abtest, approval, state


def launch(alert_id: int) -> int | None:
    """Fix the (first) recipients, mark the alert sending, dispatch after commit; returns how
    many it goes to, or None for a list large enough to be fixed in chunks: after the commit,
    `state.expected_recipients` says (so counting never delays the first message). A blast
    that needs a second person's approval and lacks it is refused (`approval.ApprovalError`)."""
    if postal_address_missing(current_app.config):
        raise state.BlastError(POSTAL_ADDRESS_REQUIRED)
    approval.check_start(alert_id)
    total = state.start_blast(alert_id)
    abtest.start(alert_id)  # an A/B test's samples are queued, the rest held for the winner
    queueing.after_commit(tasknames.DISPATCH_BLAST, alert_id)
    return total


def pause(alert_id: int) -> None:
    state.pause(alert_id)


def resume(alert_id: int) -> None:
    state.resume(alert_id)
    queueing.after_commit(tasknames.DISPATCH_BLAST, alert_id)


def cancel(alert_id: int) -> None:
    state.cancel(alert_id)


OPERATIONS = {"pause": (pause, "paused"), "resume": (resume, "resumed"), "cancel": (cancel, "cancelled")}
