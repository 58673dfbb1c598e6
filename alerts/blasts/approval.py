"""Two-person approval: a blast to APPROVAL_MIN_RECIPIENTS or more starts only once a second
staff member with send permission has approved exactly what it sends.

The approval holds a digest of what the approver judged (the content, the audience, the
sender, the schedule); any change to one of those makes the digest differ, and the approval
is void from then on. Each part's own digest is kept in the approval's audit record, so the
page can say which part changed. Nothing here commits: the caller does, with its audit record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask import current_app

from .. import audiences, tasknames
from ..extensions import db
from ..mail.context import external_url, org_context
from ..mail.rendering import compiled
from ..mail.signed_ids import envelope_sender
from ..models import AbTest, Alert, AlertState, AuditEvent, StaffUser, utcnow
from ..permissions import Permission, allows
from ..subscribers import emails
from .state import BlastError, locked_alert, recipient_count

APPROVE = "alert.approve"
REQUEST = "alert.approval_request"
START_REFUSED = "alert.unschedule"  # beat's record when a scheduled start lacked its approval
SECOND_PERSON = "a second staff member with send permission"

# What an approver judges, part by part, and how the page names a part that changed.
PART_WORDS = {
    "content": "the content (subject, preheader, intro, each in every language, actions or A/B variants)",
    "audience": "the audience",
    "sender": "the sender",
    "schedule": "the schedule",
}


class ApprovalError(BlastError):
    """An approval refused, or a blast that lacks the approval it needs; the message says which."""


def target(alert_id: int) -> str:
    """How the audit trail names an alert."""
    return f"alert:{alert_id}"


def _parts(alert: Alert) -> dict[str, object]:
    test = db.session.get(AbTest, alert.id)
    variants = test.variants if test is not None else []
    return {
        "content": {
            "subject": alert.subject, "preheader": alert.preheader, "intro_md": alert.intro_md,
            # another language's text is content too (absent when there is none: approvals
            # given before alerts had one stay valid)
            **({"translations": alert.translations} if alert.translations else {}),
            "actions": [a.id for a in alert.actions],
            "ab": None if test is None else {
                "subjects": [v.get("subject") for v in variants], "sample_pct": test.sample_pct,
                "wait_minutes": test.wait_minutes, "metric": test.metric},
        },
        "audience": alert.audience or {},
        # From is MAIL_FROM for every alert; an A/B variant may give it another display name.
        "sender": {"mail_from": current_app.config["MAIL_FROM"],
                   "from_names": [v.get("from_name") for v in variants]},
        "schedule": alert.scheduled_for.isoformat() if alert.scheduled_for else None,
    }


def _hash(value: object) -> str:
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def part_digests(alert: Alert) -> dict[str, str]:
    """Each part's digest, kept in the approval's audit record to name what changed later."""
    return {name: _hash(value) for name, value in _parts(alert).items()}


def digest(alert: Alert) -> str:
    """SHA-256 of what an approver judges, as canonical JSON: the approval holds to this."""
    return _hash(part_digests(alert))


def threshold() -> int:
    return current_app.config["APPROVAL_MIN_RECIPIENTS"]


def required(count: int) -> bool:
    """A blast to this many needs approval (APPROVAL_MIN_RECIPIENTS 0 asks it of none)."""
    limit = threshold()
    return limit > 0 and count >= limit


def _valid(alert: Alert) -> bool:
    return alert.approved_digest is not None and alert.approved_digest == digest(alert)


def changed_parts(alert: Alert) -> list[str]:
    """What changed since the last approval, by its audit record; empty when that is unknown."""
    detail = db.session.scalar(
        sa.select(AuditEvent.detail)
        .where(AuditEvent.action == APPROVE, AuditEvent.target == target(alert.id))
        .order_by(AuditEvent.id.desc()).limit(1))
    then = (detail or {}).get("parts") or {}
    if not then:
        return []
    now = part_digests(alert)
    return [name for name in PART_WORDS if then.get(name) != now[name]]


@dataclass(frozen=True)
class Standing:
    """An alert's approval as the pages and the CLI say it."""

    state: str  # not_needed | needed | approved | void | unknown (not counted yet)
    words: str
    approved_by: str | None = None
    approved_at: datetime | None = None
    changed: list[str] = field(default_factory=list)


def _void_words(alert: Alert) -> tuple[str, list[str]]:
    changed = changed_parts(alert)
    what = " and ".join(PART_WORDS[name] for name in changed) if changed else "what it sends"
    return f"its approval is void: {what} changed after {alert.approved_by} approved it", changed


def _need_words(count: int | None) -> str:
    limit = f"{threshold():,}"
    if count is None:
        return f"a blast to {limit} or more people needs the approval of {SECOND_PERSON}"
    return (f"it needs the approval of {SECOND_PERSON}: it goes to {count:,} "
            f"recipient{'' if count == 1 else 's'}, and a blast to {limit} or more needs one")


def standing(alert: Alert, count: int | None) -> Standing:
    """The approval's state; `count` None when the audience is not counted (the alert page)."""
    if _valid(alert):
        return Standing("approved", f"approved by {alert.approved_by}", alert.approved_by,
                        alert.approved_at)
    if count is not None and not required(count):
        return Standing("not_needed", f"no approval needed: it goes to {count:,} "
                        f"recipient{'' if count == 1 else 's'}, fewer than {threshold():,}")
    if threshold() <= 0:
        return Standing("not_needed", "no approval needed (APPROVAL_MIN_RECIPIENTS is 0)")
    if alert.approved_digest is not None:
        words, changed = _void_words(alert)
        return Standing("void", words, alert.approved_by, alert.approved_at, changed)
    return Standing("needed" if count is not None else "unknown", _need_words(count))


def approver_refusal(alert: Alert, approver: StaffUser | None, email: str) -> str | None:
    """Why this person may not approve this alert, or None: the page says it before the POST."""
    if approver is None:
        return f"there is no staff account {email}"
    if approver.disabled_at is not None:
        return f"the staff account {approver.email} is disabled"
    if not allows(approver.role, Permission.SEND):
        return (f"{approver.email} is {approver.role}; approving needs send permission "
                "(sender, admin or owner)")
    if alert.created_by and alert.created_by.strip().lower() == approver.email.strip().lower():
        return f"{approver.email} created this alert; it needs the approval of {SECOND_PERSON}"
    if _edited_by(alert.id, approver.email):
        return f"{approver.email} edited this alert; it needs the approval of {SECOND_PERSON}"
    if alert.state != AlertState.DRAFT:
        return f"alert {alert.id} is {alert.state}; only a draft can be approved"
    return None


def _edited_by(alert_id: int, email: str) -> bool:
    """Whether this person wrote any of the draft (its audit trail's edits): they are not a second person."""
    return db.session.scalar(sa.select(AuditEvent.id).where(
        AuditEvent.target == f"alert {alert_id}", AuditEvent.action.in_(("alert.create", "alert.edit")),
        AuditEvent.actor_kind == "staff", sa.func.lower(AuditEvent.actor) == email.strip().lower(),
    ).limit(1)) is not None


def staff_by_email(email: str) -> StaffUser | None:
    return db.session.scalar(sa.select(StaffUser).where(
        sa.func.lower(StaffUser.email) == email.strip().lower()))


def approve(alert_id: int, approver_email: str, seen_digest: str, recipients: int | None) -> dict[str, str]:
    """Record the approval of what the approver saw (`seen_digest`); returns each part's digest
    for the audit record. Refused when they may not approve, or the alert changed since they
    looked (an edit that landed between their page and their click)."""
    alert = locked_alert(alert_id)
    refusal = approver_refusal(alert, staff_by_email(approver_email), approver_email)
    if refusal:
        raise ApprovalError(refusal)
    if seen_digest != digest(alert):
        raise ApprovalError(f"alert {alert_id} changed after this approval page was shown; "
                            "look at it again before approving")
    alert.approved_by = approver_email.strip().lower()
    alert.approved_at = utcnow()
    alert.approved_digest = seen_digest
    alert.approved_recipients = recipients
    return part_digests(alert)


def check_start(alert_id: int) -> None:
    """Refuse a blast start that needs approval it lacks (naming what is missing). Every start
    comes through here (`control.launch`: the staff Send, `alerts alert send`, beat)."""
    alert = locked_alert(alert_id)
    if alert.state != AlertState.DRAFT or threshold() <= 0 or _valid(alert):
        return  # (a sent alert is refused by start_blast, which says so)
    try:
        count = recipient_count(alert)
    except audiences.AudienceError:
        return  # start_blast names the bad rule
    if not required(count):
        return
    words = _void_words(alert)[0] if alert.approved_digest is not None else _need_words(count)
    if alert.approved_digest is not None:
        words += f"; a blast to {threshold():,} or more needs the approval of {SECOND_PERSON}"
    raise ApprovalError(f"alert {alert_id} was not started: {words}")


def senders_to_ask(requester: str) -> list[str]:
    """Every other enabled staff member who may approve (holds send permission)."""
    people = db.session.scalars(sa.select(StaffUser).where(StaffUser.disabled_at.is_(None))
                                .order_by(StaffUser.id))
    me = requester.strip().lower()
    return [p.email for p in people if allows(p.role, Permission.SEND) and p.email.lower() != me]


REQUEST_SLOTS = ("approve_url", "requester", "subject", "audience")


# Written to a staff member, not to a subscriber: no list to leave, so no unsubscribe link or
# header; a staff member stops these by losing send permission (their role) or their account.
@emails.email("approval_request", task=tasknames.SEND_APPROVAL_REQUEST, subscriber=False)
def send_request(alert_id: int, to: str, requester: str) -> emails.Email | None:
    """Ask one staff member with send permission to approve a draft; None once it is no draft."""
    alert = db.session.get(Alert, alert_id)
    if alert is None or alert.state != AlertState.DRAFT:
        return None
    try:
        description = audiences.describe(audiences.parse(alert.audience), audiences.linked_action_ids(alert))
    except audiences.AudienceError as exc:
        description = f"not valid yet ({exc})"
    return emails.Email(
        to=to, compiled=compiled("approval_request", REQUEST_SLOTS, org_context),
        values={"approve_url": external_url("staff.alert_approve", alert_id=alert.id),
                "requester": requester, "subject": alert.subject, "audience": description},
        return_path=envelope_sender(current_app.config),
    )
