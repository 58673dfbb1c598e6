"""`alerts journey list|add-step|pause|resume`: the journeys' command-line side."""

from __future__ import annotations

import json

import click
import sqlalchemy as sa

from .. import journeys
from ..extensions import db
from ..models import Action, Journey
from ..words import plural
from .common import ID, record
from .database import Group


@click.group("journey", cls=Group)  # its commands run inside the app context
def journey_group() -> None:
    """Journeys: a trigger, then emails after delays (the welcome series, follow-up ladders)."""


def _journey(journey_id: int) -> Journey:
    journey = db.session.get(Journey, journey_id)
    if journey is None:
        raise click.ClickException(f"there is no journey {journey_id} (see `alerts journey list`)")
    return journey


def _items() -> list[dict]:
    slugs = {r.id: r.slug for r in db.session.execute(sa.select(Action.id, Action.slug))}
    out = []
    for journey in db.session.scalars(sa.select(Journey).order_by(Journey.id)):
        steps = []
        for step in journey.steps:
            subject = "Welcome email" if step.is_welcome else (step.alert.subject if step.alert else "")
            steps.append({"after_minutes": step.after_minutes, "subject": subject,
                          "unless_signed": slugs.get(step.unless_signed_action_id)
                          if step.unless_signed_action_id else None})
        out.append({"id": journey.id, "name": journey.name, "trigger": journey.trigger, "steps": steps})
    return out


@journey_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of a table.")
def journey_list(as_json: bool) -> None:
    """Every journey with its trigger and steps (the default one, "New subscribers", is made if missing)."""
    journeys.ensure_default()
    db.session.commit()
    items = _items()
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    paused = {j.id for j in db.session.scalars(sa.select(Journey).where(Journey.paused.is_(True)))}
    for item in items:
        state = " (paused)" if item["id"] in paused else ""
        click.echo(f"{item['id']:>4}  {item['name']}{state}  trigger: {item['trigger']}")
        for n, step in enumerate(item["steps"], start=1):
            unless = f"  unless signed {step['unless_signed']}" if step["unless_signed"] else ""
            wait = plural(step["after_minutes"], "minute")
            click.echo(f"      {n}. after {wait}: {step['subject']}{unless}")


@journey_group.command("add-step")
@click.argument("journey_id", metavar="ID", type=ID)
@click.option("--after", "after", type=click.IntRange(0, 366 * 24 * 60), required=True,
              help="Minutes to wait after the previous step (after entering, for the first).")
@click.option("--subject", required=True, help="The email's subject ({first_name|friend} greets by name).")
@click.option("--body", required=True, help="The email's text (Markdown), above its actions.")
@click.option("--unless-signed", "unless_signed", metavar="SLUG",
              help="Skip the step for those who have signed this action.")
@click.option("--action", "actions", multiple=True, metavar="SLUG",
              help="An action the email links, as an alert does (repeatable).")
def add_step(journey_id: int, after: int, subject: str, body: str, unless_signed: str | None,
             actions: tuple[str, ...]) -> None:
    """Append an email step to journey ID; everyone who has not reached the end gets it."""
    journey = _journey(journey_id)
    try:
        step = journeys.add_step(journey, after_minutes=after, subject=subject, body=body,
                                 unless_signed=unless_signed, action_slugs=list(actions) or None)
    except journeys.JourneyError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    record("journey.add_step", f"journey:{journey.id}", position=step.position, after_minutes=after,
           subject=subject, unless_signed=unless_signed)
    db.session.commit()
    db.session.expire(journey, ["steps"])
    click.echo(f"Step {len(journey.steps)} of journey {journey.id} ({journey.name}): "
               f"after {plural(after, 'minute')}, “{subject}”.")


def _pause(journey_id: int, paused: bool) -> None:
    journey = _journey(journey_id)
    try:
        journeys.set_paused(journey, paused)
    except journeys.JourneyError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    record("journey.pause" if paused else "journey.resume", f"journey:{journey.id}")
    db.session.commit()
    click.echo(f"Journey {journey.id} ({journey.name}) {'paused' if paused else 'resumed'}.")


@journey_group.command("pause")
@click.argument("journey_id", metavar="ID", type=ID)
def pause(journey_id: int) -> None:
    """Send no step of journey ID until it is resumed (people still enter it, and wait)."""
    _pause(journey_id, True)


@journey_group.command("resume")
@click.argument("journey_id", metavar="ID", type=ID)
def resume(journey_id: int) -> None:
    """Send journey ID's due steps again."""
    _pause(journey_id, False)
