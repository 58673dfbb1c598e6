"""`alerts alert …`: compose, send and follow action alerts."""

from __future__ import annotations

import json
import sys
import time

import click
from flask.cli import AppGroup

from ..blasts import control, progress, state
from ..blasts.compose import ComposeError, save_alert
from ..blasts.state import BlastError
from ..extensions import db
from ..models import Alert, AlertState
from ..reports.alert_report import report as alert_report
from .progress import Progress


@click.group("alert", cls=AppGroup)  # its commands run inside the app context
def alert_group() -> None:
    """Compose, send and follow action alerts."""


@alert_group.command("create")
@click.option("--subject", required=True)
@click.option("--intro", required=True, help="The opening text, in Markdown.")
@click.option("--preheader", default="", help="The preview line inboxes show.")
@click.option("--action", "actions", multiple=True, help="Action slug (repeatable); default: all open.")
def alert_create(subject: str, intro: str, preheader: str, actions: tuple[str, ...]) -> None:
    """Create a draft alert and print its id."""
    try:
        alert = save_alert(None, subject=subject, intro_md=intro, preheader=preheader,
                           action_slugs=list(actions), created_by="cli")
    except ComposeError as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.commit()
    click.echo(alert.id)


@alert_group.command("send")
@click.argument("alert_id", type=int)
@click.option("--wait", is_flag=True, help="Show a progress bar until the blast ends.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (scripts are never asked).")
def alert_send(alert_id: int, wait: bool, yes: bool) -> None:
    """Start the blast to every confirmed subscriber.

    On a terminal it asks first, naming the subject and the count; `--yes` skips that.
    With no terminal on standard input (a script, cron, CI) it never asks.
    """
    if not yes and sys.stdin.isatty():
        _confirm_send(alert_id)
    try:
        total = control.launch(alert_id)
    except BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"Alert {alert_id}: sending to {total} subscriber(s).", err=True)
    if wait:
        _wait(alert_id, total)


def _confirm_send(alert_id: int) -> None:
    """Name what is about to go, and to how many, before a person starts a blast."""
    alert = db.session.get(Alert, alert_id)
    if alert is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    if alert.state != AlertState.DRAFT:
        raise click.ClickException(f"alert {alert_id} is {alert.state}; only a draft can be sent")
    count = state.recipient_count()
    people = f"{count:,} confirmed subscriber{'' if count == 1 else 's'}"
    if not click.confirm(f"Send alert {alert_id} \u201c{alert.subject}\u201d to {people} now?",
                         default=False, err=True):
        raise click.ClickException("not sent")


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
    for label, value in _status_lines(status):
        click.echo(f"{label:>10}  {value}")


def _status_lines(s: dict) -> list[tuple[str, str]]:
    """The status as a person reads it: words, thousands separators, nothing printed as None."""
    lines = [("State", s["state"]), ("Total", f"{s['total']:,} recipient(s)")]
    waiting = s["queued"] + s["sending"]
    lines += [("Waiting", f"{waiting:,}"), ("Sent", f"{s['sent']:,}"), ("Failed", f"{s['failed']:,}"),
              ("Skipped", f"{s['skipped']:,}"), ("Done", f"{s['percent']:g}%")]
    if s["state"] == "sending":
        lines.append(("Rate", f"{s['rate_per_second']:g} messages/s"))
        left = s["seconds_left"]
        lines.append(("Time left", "unknown yet" if left is None else _duration(left)))
    if s.get("started_at"):
        lines.append(("Started", s["started_at"].replace("T", " ")[:19] + " UTC"))
    if s.get("finished_at"):
        lines.append(("Finished", s["finished_at"].replace("T", " ")[:19] + " UTC"))
    return lines


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds // 3600} h {round(seconds % 3600 / 60)} min"


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


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


@alert_group.command("report")
@click.argument("alert_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def alert_report_command(alert_id: int, as_json: bool) -> None:
    """Did the alert move people: delivery, clicks (people and machines), signatures per action."""
    data = alert_report(alert_id)
    if data is None:
        raise click.ClickException(f"there is no alert {alert_id}")
    if as_json:
        click.echo(json.dumps(data))
        return
    clicks = data["clicks"]
    rows = [
        ("Delivered", data["delivered"]), ("Failed", data["failed"]), ("Bounced", data["bounced"]),
        ("Complaints", data["complaints"]), ("Unsubscribed", data["unsubscribed"]),
        ("People who clicked", f"{clicks['unique']} ({_percent(data['click_rate'])} of delivered)"),
        ("Clicks by people", clicks["total"]), ("Machine clicks (apart)", clicks["machine"]),
        ("Signatures", f"{data['signatures']} ({data['signatures_after_click']} after a click)"),
        ("Click-to-sign", _percent(data["click_to_sign_rate"])),
    ]
    click.echo(f"Alert {data['id']}: {data['subject']} ({data['state']})")
    for label, value in rows:
        click.echo(f"{label:>24}: {value}")
    click.echo("\nBy action: people who clicked, signatures, click-to-sign")
    for item in data["by_action"]:
        click.echo(f"  {item['slug']}: {item['unique_clicks']}, {item['signatures']}, "
                   f"{_percent(item['click_to_sign_rate'])}")
    for key in ("first_hour", "first_day", "first_week"):
        w = data[key]
        click.echo(f"{key.replace('_', ' ').capitalize():>24}: {w['clicks']['unique']} people clicked, "
                   f"{w['signatures']} signed")
