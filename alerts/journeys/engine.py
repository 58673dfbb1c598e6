"""Entering journeys, and beat's pass that gives each due person their next step."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app

from .. import i18n, suppressions
from ..actions import by_slug, open_actions
from ..blasts.compose import ComposeError, save_alert
from ..blasts.content import frozen_links
from ..blasts.dispatch import _queue_batches
from ..extensions import db, upsert
from ..models import (
    Action,
    Alert,
    AlertState,
    Click,
    Delivery,
    DeliveryStatus,
    Journey,
    JourneyMember,
    JourneyStep,
    Signature,
    Subscriber,
    SubscriberStatus,
    email_hash,
    utcnow,
)
from ..tracking import links
from . import defaults

log = logging.getLogger(__name__)

DEFAULT_NAME = "New subscribers"


class JourneyError(ValueError):
    """A request a journey cannot take; the message names the problem."""


def parse_trigger(trigger: str) -> str:
    """The trigger as stored: confirmed, imported, or signed:SLUG of an action that exists."""
    trigger = (trigger or "").strip()
    if trigger in ("confirmed", "imported"):
        return trigger
    if trigger.startswith("signed:"):
        slug = trigger.removeprefix("signed:").strip()
        if not slug or by_slug(slug) is None:
            raise JourneyError(f"there is no action “{slug}” (signed:SLUG names an action)")
        return f"signed:{slug}"
    raise JourneyError(f"“{trigger}” is not a trigger (confirmed, signed:SLUG or imported)")


def journey_of(journey_id: int) -> Journey:
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        raise JourneyError(f"there is no journey {journey_id}")
    return journey


def create(name: str, trigger: str, created_by: str | None = None) -> Journey:
    """A new journey with no steps yet."""
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise JourneyError("a journey needs a name of at most 120 characters")
    if db.session.scalar(sa.select(Journey.id).where(Journey.name == name)) is not None:
        raise JourneyError(f"there is already a journey named “{name}”")
    journey = Journey(name=name, trigger=parse_trigger(trigger), created_by=created_by, paused=False)
    db.session.add(journey)
    db.session.flush()
    return journey


def _next_position(journey_id: int) -> int:
    top = db.session.scalar(sa.select(sa.func.max(JourneyStep.position))
                            .where(JourneyStep.journey_id == journey_id))
    return (top or 0) + 1


def add_step(journey: Journey, *, after_minutes: int, subject: str, body: str, preheader: str = "",
             unless_signed: str | None = None, action_slugs: list[str] | None = None,
             only_if_not_clicked_previous: bool = False,
             translations: dict[str, dict[str, str | None]] | None = None,
             created_by: str | None = None) -> JourneyStep:
    """Append an email step; people who have not reached the end of the journey get it."""
    step = JourneyStep(journey_id=journey.id, position=_next_position(journey.id), removed=False,
                       is_welcome=False)
    _apply(step, after_minutes=after_minutes, subject=subject, body=body, preheader=preheader,
           unless_signed=unless_signed, action_slugs=action_slugs,
           only_if_not_clicked_previous=only_if_not_clicked_previous, translations=translations,
           created_by=created_by)
    db.session.add(step)
    db.session.flush()
    return step


def update_step(step: JourneyStep, *, after_minutes: int, subject: str, body: str, preheader: str = "",
                unless_signed: str | None = None, action_slugs: list[str] | None = None,
                only_if_not_clicked_previous: bool = False,
                translations: dict[str, dict[str, str | None]] | None = None) -> JourneyStep:
    """Edit a step: read at send time, so it applies to everyone who has not reached it."""
    if step.is_welcome:
        raise JourneyError("the welcome step is edited on the welcome email's page")
    _apply(step, after_minutes=after_minutes, subject=subject, body=body, preheader=preheader,
           unless_signed=unless_signed, action_slugs=action_slugs,
           only_if_not_clicked_previous=only_if_not_clicked_previous, translations=translations)
    db.session.flush()
    return step


def _apply(step: JourneyStep, *, after_minutes: int, subject: str, body: str, preheader: str,
           unless_signed: str | None, action_slugs: list[str] | None, only_if_not_clicked_previous: bool,
           translations: dict[str, dict[str, str | None]] | None, created_by: str | None = None) -> None:
    if isinstance(after_minutes, bool) or not isinstance(after_minutes, int) or after_minutes < 0:
        raise JourneyError("--after is a whole number of minutes, 0 or more")
    if after_minutes > 366 * 24 * 60:
        raise JourneyError("a step waits at most a year (527,040 minutes)")
    action: Action | None = None
    if unless_signed:
        action = by_slug(unless_signed.strip())
        if action is None:
            raise JourneyError(f"there is no action “{unless_signed}” to skip the step for its signers")
    try:
        alert = save_alert(step.alert, subject=subject, intro_md=body, preheader=preheader,
                           action_slugs=action_slugs, created_by=created_by, translations=translations)
    except ComposeError as exc:
        raise JourneyError(str(exc)) from exc
    alert.state = AlertState.JOURNEY
    step.alert = alert
    step.after_minutes = after_minutes
    step.unless_signed_action_id = action.id if action else None
    step.only_if_not_clicked_previous = only_if_not_clicked_previous


def remove_step(step: JourneyStep) -> None:
    """Nobody gets the step from now on; its email and figures stay."""
    if step.is_welcome:
        raise JourneyError("the welcome step stays; switch the welcome email off on its page instead")
    step.removed = True


def set_paused(journey: Journey, paused: bool) -> None:
    """A paused journey sends no step (people still enter, and wait); resumed, due steps go out."""
    if journey.paused == paused:
        raise JourneyError(f"journey {journey.id} is already {'paused' if paused else 'running'}")
    journey.paused = paused


def ensure_default() -> Journey:
    """The journey "New subscribers" (trigger: confirmed): the welcome, then two emails.

    Found by its welcome step, so that staff may rename it."""
    journey = db.session.scalar(
        sa.select(Journey).join(JourneyStep, JourneyStep.journey_id == Journey.id)
        .where(JourneyStep.is_welcome.is_(True)).order_by(Journey.id).limit(1))
    if journey is not None:
        return journey
    journey = Journey(name=DEFAULT_NAME, trigger="confirmed", paused=False)
    db.session.add(journey)
    db.session.flush()
    db.session.add(JourneyStep(journey_id=journey.id, position=1, after_minutes=0, is_welcome=True,
                               removed=False))
    actions = open_actions()
    slugs = [a.slug for a in actions]
    for position, text in enumerate(defaults.STEPS, start=2):
        step = JourneyStep(journey_id=journey.id, position=position, removed=False, is_welcome=False)
        translations: dict[str, dict[str, str | None]] = {
            lang: dict(v) for lang, v in text.translations.items() if lang in i18n.other_languages()}
        _apply(step, after_minutes=text.after_minutes, subject=text.subject, body=text.body,
               preheader=text.preheader, unless_signed=None, only_if_not_clicked_previous=False,
               action_slugs=slugs[:text.actions] if text.actions else slugs,
               translations=translations or None)
        if text.unless_signed_first and actions:
            step.unless_signed_action_id = actions[0].id
        db.session.add(step)
    db.session.flush()
    return journey


# -- entering --------------------------------------------------------------------------------


def _steps(journey_id: int) -> list[JourneyStep]:
    return list(db.session.scalars(
        sa.select(JourneyStep).where(JourneyStep.journey_id == journey_id, JourneyStep.removed.is_(False))
        .order_by(JourneyStep.position)))


def enter(trigger: str, subscriber_ids: list[int], now: datetime | None = None) -> int:
    """Put these people in every journey of `trigger` they are not in yet; returns rows added.

    Someone who was in a journey once (even if they left it) does not enter it again: each
    person passes each step at most once."""
    now = now or utcnow()
    if trigger == "confirmed":
        ensure_default()
    journeys = db.session.scalars(sa.select(Journey).where(Journey.trigger == trigger)).all()
    return sum(_enter(journey, subscriber_ids, now) for journey in journeys)


def _enter(journey: Journey, subscriber_ids: list[int], now: datetime) -> int:
    ids = sorted(set(subscriber_ids))
    added = 0
    steps = _steps(journey.id)
    first = steps[0] if steps else None
    due = now + timedelta(minutes=first.after_minutes if first else 0)
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        rows = [{"journey_id": journey.id, "subscriber_id": sid, "entered_at": now,
                 "next_position": first.position if first else 1, "due_at": due} for sid in chunk]
        before = db.session.scalar(sa.select(sa.func.count()).where(
            JourneyMember.journey_id == journey.id, JourneyMember.subscriber_id.in_(chunk))) or 0
        db.session.execute(upsert(JourneyMember).values(rows).on_conflict_do_nothing(
            index_elements=["journey_id", "subscriber_id"]))
        after = db.session.scalar(sa.select(sa.func.count()).where(
            JourneyMember.journey_id == journey.id, JourneyMember.subscriber_id.in_(chunk))) or 0
        added += after - before
    return added


def enter_imported(journey: Journey, email_keys: list[str], now: datetime | None = None) -> int:
    """An import's confirmed subscribers enter the journey its importer named (trigger: imported)."""
    ids: list[int] = []
    for start in range(0, len(email_keys), 1000):
        ids += db.session.scalars(sa.select(Subscriber.id).where(
            Subscriber.email_key.in_(email_keys[start:start + 1000]),
            Subscriber.status == SubscriberStatus.CONFIRMED)).all()
    return _enter(journey, ids, now or utcnow())


def on_signature(signature_id: int, now: datetime | None = None) -> int:
    """A signature that counts: its signer enters the journeys of signed:SLUG (if a subscriber)."""
    row = db.session.execute(
        sa.select(Signature.subscriber_id, Signature.email_key, Action.slug)
        .join(Action, Action.id == Signature.action_id)
        .where(Signature.id == signature_id, Signature.confirmed_at.is_not(None))).one_or_none()
    if row is None:
        return 0
    trigger = f"signed:{row.slug}"
    if db.session.scalar(sa.select(Journey.id).where(Journey.trigger == trigger).limit(1)) is None:
        return 0
    sub_id = row.subscriber_id or db.session.scalar(
        sa.select(Subscriber.id).where(Subscriber.email_key == row.email_key))
    if sub_id is None:
        return 0
    return enter(trigger, [sub_id], now)


# -- beat's pass -----------------------------------------------------------------------------


@dataclass
class Pass:
    """What one pass did (the task logs it)."""

    looked_at: int = 0
    queued: int = 0
    skipped: int = 0
    postponed: int = 0
    exited: dict[str, int] = field(default_factory=dict)
    batches: int = 0

    def exit(self, member: JourneyMember, reason: str, now: datetime) -> None:
        member.exited_at = now
        member.exit_reason = reason
        member.due_at = None
        self.exited[reason] = self.exited.get(reason, 0) + 1


class _Batch:
    """What one pass needs to know about its people, read with a query each, not one per person:
    what they have signed, and their deliveries that count against the daily cap (kept up to
    date as the pass queues more)."""

    def __init__(self, subs: dict[int, Subscriber], action_ids: set[int], now: datetime) -> None:
        self.rows: list[dict[str, object]] = []  # the delivery rows the pass will insert at once
        self.signed: set[tuple[int, int]] = set()  # (subscriber id, action id)
        ids = list(subs)
        if action_ids and ids:
            by_key = {s.email_key: s.id for s in subs.values() if s.email_key}
            for action_id, sub_id, key in db.session.execute(
                sa.select(Signature.action_id, Signature.subscriber_id, Signature.email_key).where(
                    Signature.action_id.in_(action_ids), Signature.confirmed_at.is_not(None),
                    sa.or_(Signature.subscriber_id.in_(ids), Signature.email_key.in_(list(by_key))))):
                for who in (sub_id, by_key.get(key)):
                    if who in subs:
                        self.signed.add((who, action_id))
        since = now - timedelta(hours=24)
        # Per person: the send times of their deliveries that count (None: queued or going out).
        self.recent: dict[int, list[datetime | None]] = {i: [] for i in ids}
        if ids:
            for sub_id, status, sent_at in db.session.execute(
                sa.select(Delivery.subscriber_id, Delivery.status, Delivery.sent_at).where(
                    Delivery.subscriber_id.in_(ids),
                    sa.or_(Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING]),
                           sa.and_(Delivery.status == DeliveryStatus.SENT, Delivery.sent_at > since)))):
                if sub_id is not None:
                    self.recent[sub_id].append(sent_at if status == DeliveryStatus.SENT else None)

    def has_signed(self, sub_id: int, action_id: int) -> bool:
        return (sub_id, action_id) in self.signed

    def cap_wait(self, sub_id: int, now: datetime, cap: int) -> timedelta | None:
        """How long until this person may get one more email under the daily cap (None: now):
        every delivery of theirs counts, blasts and journeys, sent in the last 24 hours or
        still queued or going out."""
        rows = self.recent.get(sub_id, [])
        if len(rows) < cap:
            return None
        sent = sorted(t for t in rows if t is not None)
        if len(rows) - len(sent) >= cap or not sent:
            return timedelta(hours=1)  # those still going out count as sent now: look again soon
        return max(timedelta(minutes=1), sent[0] + timedelta(hours=24) - now)

    def queued(self, sub_id: int) -> None:
        self.recent.setdefault(sub_id, []).append(None)


def _clicked(sub_id: int, alert_id: int | None) -> bool:
    if alert_id is None:
        return False
    return db.session.scalar(sa.select(sa.exists().where(
        Click.alert_id == alert_id, Click.subscriber_id == sub_id, Click.machine.is_(False)))) or False


def run_due(now: datetime | None = None, limit: int = 1000) -> Pass:
    """Give each person due in a running journey their next step, up to `limit` people.

    The person's delivery row and their move to the next step are written in the caller's
    transaction, and the batches queued after its commit: a pass that dies before it commits
    did nothing, one that dies after leaves queued rows that the sweep sends."""
    now = now or utcnow()
    cap = current_app.config["JOURNEY_DAILY_CAP"]
    done = Pass()
    members = db.session.scalars(
        sa.select(JourneyMember)
        .join(Journey, Journey.id == JourneyMember.journey_id)
        .where(JourneyMember.exited_at.is_(None), JourneyMember.due_at <= now, Journey.paused.is_(False))
        .order_by(JourneyMember.due_at, JourneyMember.id).limit(limit)
        .with_for_update(skip_locked=True, of=JourneyMember)
    ).all()
    if not members:
        return done
    subs = {s.id: s for s in db.session.scalars(
        sa.select(Subscriber).where(Subscriber.id.in_({m.subscriber_id for m in members})))}
    suppressed = suppressions.suppressed_hashes([s.email for s in subs.values() if s.email])
    steps_of: dict[int, list[JourneyStep]] = {
        journey_id: _steps(journey_id) for journey_id in sorted({m.journey_id for m in members})}
    asked = {s.unless_signed_action_id for steps in steps_of.values() for s in steps
             if s.unless_signed_action_id is not None}
    batch = _Batch(subs, asked, now)
    newest_before: dict[int, int] = {}  # alert id -> its highest delivery id before this pass
    for member in members:
        done.looked_at += 1
        sub = subs.get(member.subscriber_id)
        if sub is None or sub.status == SubscriberStatus.UNSUBSCRIBED:
            done.exit(member, "unsubscribed", now)
            continue
        if sub.status != SubscriberStatus.CONFIRMED:
            done.exit(member, "not-confirmed", now)
            continue
        if sub.email and email_hash(sub.email) in suppressed:
            done.exit(member, "suppressed", now)
            continue
        _advance(member, sub, steps_of[member.journey_id], now, cap, batch, newest_before, done)
    if batch.rows:
        # One statement for the pass's rows (the unique key still makes each person's step once).
        db.session.connection().execute(
            upsert(Delivery).on_conflict_do_nothing(index_elements=["alert_id", "subscriber_id"]),
            batch.rows)
    db.session.flush()
    for alert_id, before in newest_before.items():
        alert = db.session.get_one(Alert, alert_id)
        links.freeze(alert_id, frozen_links(alert))  # once: the links /r/ may lead to
        batches, _ = _queue_batches(alert, after=before)
        done.batches += batches
    return done


def _advance(member: JourneyMember, sub: Subscriber, steps: list[JourneyStep], now: datetime, cap: int,
             batch: _Batch, newest_before: dict[int, int], done: Pass) -> None:
    """The member's next step, if it is due for them: sent, skipped, or postponed by the cap."""
    previous: JourneyStep | None = None
    for step in steps:
        if step.position < member.next_position:
            previous = step
            continue
        skip = (step.is_welcome  # sent by the welcome email on confirmation
                or step.alert_id is None
                or (step.unless_signed_action_id is not None
                    and batch.has_signed(sub.id, step.unless_signed_action_id))
                or (step.only_if_not_clicked_previous and previous is not None
                    and _clicked(sub.id, previous.alert_id)))
        if not skip:
            wait = batch.cap_wait(sub.id, now, cap)
            if wait is not None:
                member.next_position = step.position
                member.due_at = now + wait
                done.postponed += 1
                return
            assert step.alert_id is not None
            if step.alert_id not in newest_before:
                newest_before[step.alert_id] = db.session.scalar(
                    sa.select(sa.func.coalesce(sa.func.max(Delivery.id), 0))
                    .where(Delivery.alert_id == step.alert_id)) or 0
            batch.rows.append({"alert_id": step.alert_id, "subscriber_id": sub.id,
                               "status": DeliveryStatus.QUEUED, "attempts": 0})
            batch.queued(sub.id)
            done.queued += 1
        else:
            done.skipped += 1
        later = [s for s in steps if s.position > step.position]
        if not later:
            member.next_position = step.position + 1
            done.exit(member, "completed", now)
            return
        member.next_position = later[0].position
        member.due_at = now + timedelta(minutes=later[0].after_minutes)
        if later[0].after_minutes > 0 or not skip:
            return
        previous = step  # a skipped step with a next one due at once: that one, now
    member.next_position = (steps[-1].position + 1) if steps else member.next_position
    done.exit(member, "completed", now)
