"""`alerts alert …`: compose, send and follow action alerts."""

from __future__ import annotations

import json
import sys
import time

import click
from flask.cli import AppGroup

from ..blasts import control, progress, scheduling
from ..blasts.compose import ComposeError, save_alert
from ..blasts.state import BlastError
from ..extensions import db
from .progress import Progress


@click.group("alert", cls=AppGroup)  # its commands run inside the app context
def alert_group() -> None:
    """Compose, send and follow action alerts."""


@alert_group.command("create")
@click.option("--subject", required=True)
@click.option("--intro", required=True, help="The opening text, in Markdown.")
@click.option("--preheader", default="", help="The preview line inboxes show.")
@click.option("--action", "actions", multiple=True, help="Action slug (repeatable); default: all open.")
@click.option("--send-at", default=None, metavar="ISO8601",
              help="Schedule it: beat starts the blast at this time (with its offset, e.g. +01:00 or Z).")
def alert_create(subject: str, intro: str, preheader: str, actions: tuple[str, ...],
                 send_at: str | None) -> None:
    """Create a draft alert and print its id."""
    try:
        when = scheduling.parse_time(send_at) if send_at else None
        alert = save_alert(None, subject=subject, intro_md=intro, preheader=preheader,
                           action_slugs=list(actions), created_by="cli")
        if when:
            db.session.flush()
            scheduling.schedule(alert.id, when)
    except (ComposeError, BlastError) as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.commit()
    click.echo(alert.id)


@alert_group.command("send")
@click.argument("alert_id", type=int)
@click.option("--wait", is_flag=True, help="Show a progress bar until the blast ends.")
def alert_send(alert_id: int, wait: bool) -> None:
    """Start the blast to every confirmed subscriber."""
    try:
        total = control.launch(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Alert {alert_id}: sending to {total} subscriber(s).", err=True)
    if wait:
        _wait(alert_id, total)


def _wait(alert_id: int, total: int) -> None:
    """Follow the blast until it is no longer sending, then say how it ended."""

    def poll() -> dict:
        db.session.rollback()  # see the workers' commits
        return progress.status(alert_id)

    status = poll()
    with Progress(total, f"Alert {alert_id}") as bar:
        while status["state"] == "sending":
            time.sleep(0.5)
            before, status = status["done"], poll()
            bar.update(status["done"] - before)
        bar.update(status["done"] - bar.done)
    click.echo(
        f"Alert {alert_id} {status['state']}: {status['sent']} sent, {status['failed']} failed, "
        f"{status['skipped']} skipped, {status['queued'] + status['sending']} not sent.",
        err=True,
    )
    if status["state"] != "sent":
        sys.exit(1)


@alert_group.command("status")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def alert_status(alert_id: int, as_json: bool) -> None:
    """Show an alert's state and delivery counts."""
    try:
        status = progress.status(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(status))
        return
    for key in ("state", "scheduled_for", "total", "queued", "sending", "sent", "failed", "skipped",
                "percent", "rate_per_second", "seconds_left"):
        click.echo(f"{key:>16}: {status[key]}")
    if status.get("pace"):
        click.echo(f"{'pace':>16}: {status['pace']['why']}")
        for relay in status["pace"]["relays"]:
            limit = f"{relay['rate_limit']}/s" if relay.get("rate_limit") else "no limit"
            click.echo(f"{'':>16}  {relay['relay']}: {relay['state']}, {limit}, "
                       f"{relay.get('connections', 0)} connection(s)")


@alert_group.command("schedule")
@click.argument("alert_id", type=int)
@click.option("--at", "at", default=None, metavar="ISO8601", help="When to start the blast.")
@click.option("--cancel", is_flag=True, help="Take the alert off the schedule (it stays a draft).")
def alert_schedule(alert_id: int, at: str | None, cancel: bool) -> None:
    """Schedule a draft to be sent at a time, reschedule it, or unschedule it."""
    if bool(at) == cancel:
        raise click.UsageError("give either --at ISO8601 or --cancel")
    try:
        if cancel:
            scheduling.unschedule(alert_id)
        else:
            scheduling.schedule(alert_id, scheduling.parse_time(at))
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    status = progress.status(alert_id)
    if cancel:
        click.echo(f"Alert {alert_id} unscheduled; it is a draft.")
    else:
        click.echo(f"Alert {alert_id} scheduled for {status['scheduled_for']}.")


def _control(alert_id: int, operation: str) -> None:
    run, done = control.OPERATIONS[operation]
    try:
        run(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Alert {alert_id} {done}.")


@alert_group.command("pause")
@click.argument("alert_id", type=int)
def alert_pause(alert_id: int) -> None:
    """Pause a blast; batches in flight stop within a few messages."""
    _control(alert_id, "pause")


@alert_group.command("resume")
@click.argument("alert_id", type=int)
def alert_resume(alert_id: int) -> None:
    """Resume a paused blast where it stopped."""
    _control(alert_id, "resume")


@alert_group.command("cancel")
@click.argument("alert_id", type=int)
def alert_cancel(alert_id: int) -> None:
    """Cancel a blast; whoever has not been sent to yet is skipped."""
    _control(alert_id, "cancel")
