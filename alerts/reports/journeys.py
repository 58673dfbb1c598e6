"""A journey's figures: who is at which step, and each step's sent, clicked, signed, unsubscribed."""

from __future__ import annotations

import sqlalchemy as sa

from ..extensions import db
from ..models import Click, JourneyMember, JourneyStep, Signature
from .alert_report import delivery_figures, unsubscribed


def members_by_step(journey_id: int) -> dict[str, int]:
    """People waiting for each step (key: its position) and those who left (key: exited:REASON)."""
    out: dict[str, int] = {}
    for position, n in db.session.execute(
        sa.select(JourneyMember.next_position, sa.func.count())
        .where(JourneyMember.journey_id == journey_id, JourneyMember.exited_at.is_(None))
        .group_by(JourneyMember.next_position)):
        out[str(position)] = n
    for reason, n in db.session.execute(
        sa.select(JourneyMember.exit_reason, sa.func.count())
        .where(JourneyMember.journey_id == journey_id, JourneyMember.exited_at.is_not(None))
        .group_by(JourneyMember.exit_reason)):
        out[f"exited:{reason}"] = n
    return out


def member_count(journey_id: int) -> tuple[int, int]:
    """(people in the journey now, people who ever entered it)."""
    row = db.session.execute(
        sa.select(sa.func.count(JourneyMember.id),
                  sa.func.count(JourneyMember.id).filter(JourneyMember.exited_at.is_(None)))
        .where(JourneyMember.journey_id == journey_id)).one()
    return row[1], row[0]


def step_figures(step: JourneyStep) -> dict[str, int]:
    """The step's own alert's figures: sent, people who clicked, people who signed from it,
    and unsubscribes that followed it (before any later email reached them)."""
    if step.alert_id is None:
        return {"sent": 0, "clicked": 0, "signed": 0, "unsubscribed": 0, "queued": 0}
    figures = delivery_figures(step.alert_id)
    clicked = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(Click.subscriber_id)))
        .where(Click.alert_id == step.alert_id, Click.machine.is_(False))) or 0
    signed = db.session.scalar(
        sa.select(sa.func.count(sa.distinct(Signature.delivery_id)))
        .where(Signature.alert_id == step.alert_id)) or 0
    return {"sent": figures["sent"], "clicked": clicked, "signed": signed,
            "unsubscribed": unsubscribed(step.alert_id), "queued": figures["not_sent_yet"]}
