"""A call campaign's reports: how each call to each target went, as the caller tells it.

Reporting a call is taking the action: the caller's Signature is made through
`signing.sign` (one per person and action, with the same attribution, opt-in and
confirmation as a petition's), then one CallLog per target the caller answered for. A
second report by the same person adds call logs (they may call again) and keeps the one
signature. The caller commits.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from .. import csvout
from ..extensions import db
from ..models import CALL_OUTCOMES, Action, ActionTarget, CallLog, Signature, utcnow
from ..subscribers import subscriptions
from . import signing
from .targets import real_targets, targets_of

NOTE_MAX = 2000
OUTCOME_FIELD = "outcome-{}"  # the form's radio group for one target: outcome-<target id>
# The answers a caller chooses from, as the page words them.
OUTCOME_LABELS = {"reached": _l("I reached someone"), "voicemail": _l("I left a voicemail"),
                  "busy": _l("The line was busy"), "no-answer": _l("No answer")}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # a note keeps its line breaks and tabs


class CallError(signing.SignError):
    """A report that cannot be logged; `field` names the form field at fault."""


@dataclass
class Report:
    """What the form said of the calls: an outcome per target id (as posted), and a note."""

    outcomes: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Logged:
    outcome: signing.Outcome
    calls: int  # call logs this report added


def read_form(form: Mapping[str, str]) -> Report:
    """The report's fields from a posted form (`outcome-<id>` radios and `note`)."""
    prefix = OUTCOME_FIELD.format("")
    outcomes = {k[len(prefix):]: (v or "").strip() for k, v in form.items() if k.startswith(prefix)}
    return Report(outcomes=outcomes, note=form.get("note", "") or "")


def validate(action_id: int, report: Report) -> tuple[list[tuple[int, str]], str | None]:
    """[(target id, outcome)] for the answered targets, and the note; CallError otherwise.

    Only the action's real targets (placeholders are shown to nobody); a target may be left
    unanswered, but at least one must be answered."""
    shown = {t.id: t for t in real_targets(action_id)}
    answered = []
    for raw_id, outcome in report.outcomes.items():
        target_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 10 else None
        if target_id is None or target_id not in shown:
            raise CallError("outcomes", _("Please answer only for the people listed on this page."))
        if not outcome:
            continue
        if outcome not in CALL_OUTCOMES:
            raise CallError(OUTCOME_FIELD.format(target_id), _("Please choose one of the answers."))
        answered.append((target_id, outcome))
    if not answered:
        first = min(shown, key=lambda i: (shown[i].position, i)) if shown else None
        raise CallError(OUTCOME_FIELD.format(first) if first else "outcomes",
                        _("Please tell us how your call went."))
    note = (report.note or "").strip()
    if len(note) > NOTE_MAX:
        raise CallError("note", _("The note is too long (at most %(limit)s characters).", limit=NOTE_MAX))
    if _CONTROL.search(note):
        raise CallError("note", _("The note contains characters we can't accept."))
    answered.sort(key=lambda pair: (shown[pair[0]].position, pair[0]))
    return answered, note or None


def report_call(action: Action, entry: signing.Entry, report: Report, *, signer: signing.Signer | None,
                where: signing.Attribution, request: subscriptions.Request) -> Logged:
    """Log one caller's report: their signature (made, or the one already there) and a call
    log per answered target. Raises CallError / SignError / ActionClosed as signing does."""
    answered, note = validate(action.id, report)
    outcome = signing.sign(action, entry, signer=signer, where=where, request=request)
    now = utcnow()
    db.session.add_all([CallLog(action_id=action.id, target_id=target_id, signature_id=outcome.signature_id,
                                outcome=result, note=note, created_at=now)
                        for target_id, result in answered])
    db.session.flush()
    return Logged(outcome, len(answered))


# -- counts ------------------------------------------------------------------------------


def counts(action_id: int) -> dict[int, dict[str, int]]:
    """{target id: {outcome: calls}}, for the targets called at least once."""
    rows = db.session.execute(
        sa.select(CallLog.target_id, CallLog.outcome, sa.func.count())
        .where(CallLog.action_id == action_id).group_by(CallLog.target_id, CallLog.outcome))
    found: dict[int, dict[str, int]] = {}
    for target_id, outcome, n in rows:
        found.setdefault(target_id, {})[outcome] = n
    return found


def totals(action_id: int) -> dict[str, int]:
    """{outcome: calls} over every target, every outcome named (0 where none)."""
    found = dict.fromkeys(CALL_OUTCOMES, 0)
    for per_outcome in counts(action_id).values():
        for outcome, n in per_outcome.items():
            found[outcome] = found.get(outcome, 0) + n
    return found


def calls_logged(action_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(CallLog)
                             .where(CallLog.action_id == action_id)) or 0


@dataclass(frozen=True)
class TargetFigures:
    """One target's row on the staff page."""

    target: ActionTarget
    outcomes: dict[str, int]  # every outcome named
    total: int
    last_at: datetime | None


def figures(action_id: int) -> list[TargetFigures]:
    """Every target (placeholders too: staff see them), with its counts and its last call."""
    by_target = counts(action_id)
    last = dict(db.session.execute(
        sa.select(CallLog.target_id, sa.func.max(CallLog.created_at))
        .where(CallLog.action_id == action_id).group_by(CallLog.target_id)).all())
    rows = []
    for target in targets_of(action_id):
        outcomes = {o: by_target.get(target.id, {}).get(o, 0) for o in CALL_OUTCOMES}
        rows.append(TargetFigures(target, outcomes, sum(outcomes.values()), last.get(target.id)))
    return rows


EXPORT_COLUMNS = ("time", "target", "outcome", "note", "signer name", "signer email")
EXPORT_CHUNK = 1000


def export_csv(action_id: int) -> Iterator[str]:
    """Every call log as CSV text (an erased signer's row has no name, email or note), streamed."""
    buf = io.StringIO()
    writer = csvout.Writer(buf, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    yield csvout.drain(buf)
    query = (sa.select(CallLog.created_at, ActionTarget.name, CallLog.outcome, CallLog.note,
                       Signature.name, Signature.email)
             .join(ActionTarget, ActionTarget.id == CallLog.target_id)
             .outerjoin(Signature, Signature.id == CallLog.signature_id)
             .where(CallLog.action_id == action_id)
             .order_by(CallLog.created_at, CallLog.id))
    result = db.session.execute(query.execution_options(yield_per=EXPORT_CHUNK))
    try:
        for partition in result.partitions():
            writer.writerows((at.isoformat(timespec="seconds") if at else "", target, outcome, note or "",
                              name or "", email or "")
                             for at, target, outcome, note, name, email in partition)
            yield csvout.drain(buf)
    finally:
        result.close()

