"""The `alerts` command line: the Flask CLI plus the operator commands of the contract."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from .cli_bounces import bounces_group
from .dev import dev_command


def _create_app() -> Flask:
    from . import create_app

    return create_app()


@click.group(cls=FlaskGroup, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Action Alerts: subscriptions, action alerts and their delivery."""


def register(app: Flask) -> None:
    app.cli.add_command(seed_actions_command)
    app.cli.add_command(create_staff_command)
    app.cli.add_command(dev_command)
    app.cli.add_command(alert_group)
    app.cli.add_command(bounces_group)
    from .cli_ops import dkim_group
    from .cli_subscribers import subscribers_group

    app.cli.add_command(subscribers_group)
    app.cli.add_command(dkim_group)


@click.command("seed-actions")
@with_appcontext
def seed_actions_command() -> None:
    """Load the seven Action Center actions (idempotent)."""
    from .seed import seed_actions

    added, present = seed_actions()
    click.echo(f"{added} action(s) added, {present} already present.")


@click.command("create-staff")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_staff_command(email: str, password_stdin: bool) -> None:
    """Create a staff login (password from a prompt or --password-stdin)."""
    from .staff_accounts import StaffError, create_staff

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_staff(email, password)
    except StaffError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"Staff account {user.email} created.")


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
    from .compose import ComposeError, save_alert

    try:
        alert = save_alert(None, subject=subject, intro_md=intro, preheader=preheader,
                           action_slugs=list(actions), created_by="cli")
    except ComposeError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(alert.id)


@alert_group.command("send")
@click.argument("alert_id", type=int)
@click.option("--wait", is_flag=True, help="Show a progress bar until the blast ends.")
def alert_send(alert_id: int, wait: bool) -> None:
    """Start the blast to every confirmed subscriber."""
    from . import blasts

    try:
        total = blasts.launch(alert_id)
    except blasts.BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Alert {alert_id}: sending to {total} subscriber(s).", err=True)
    if wait:
        _wait(alert_id, total)


def _wait(alert_id: int, total: int) -> None:
    """A progress bar on a terminal; a line every few seconds in a log."""
    import time

    from . import blasts
    from .extensions import db

    def poll() -> dict:
        db.session.rollback()  # see the workers' commits
        return blasts.status(alert_id)

    status = poll()
    if sys.stderr.isatty():
        with click.progressbar(length=total, label=f"Alert {alert_id}", file=sys.stderr,
                               show_pos=True, show_percent=True, show_eta=True) as bar:
            while status["state"] == "sending":
                time.sleep(0.5)
                before, status = status["done"], poll()
                bar.update(status["done"] - before)
            bar.update(status["done"] - bar.pos)
    else:
        last = 0.0
        while status["state"] == "sending":
            if time.monotonic() - last >= 2:
                click.echo(f"Alert {alert_id}: {status['done']}/{total} ({status['percent']}%)", err=True)
                last = time.monotonic()
            time.sleep(0.5)
            status = poll()
        click.echo(f"Alert {alert_id}: {status['done']}/{total} ({status['percent']}%)", err=True)
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
    import json

    from . import blasts

    try:
        status = blasts.status(alert_id)
    except blasts.BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(status))
        return
    for key in ("state", "total", "queued", "sending", "sent", "failed", "skipped", "percent",
                "rate_per_second", "seconds_left"):
        click.echo(f"{key:>16}: {status[key]}")


def _control(alert_id: int, fn_name: str, done: str) -> None:
    from . import blasts

    try:
        getattr(blasts, fn_name)(alert_id)
    except blasts.BlastError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Alert {alert_id} {done}.")


@alert_group.command("pause")
@click.argument("alert_id", type=int)
def alert_pause(alert_id: int) -> None:
    """Pause a blast; batches in flight stop within a few messages."""
    _control(alert_id, "pause", "paused")


@alert_group.command("resume")
@click.argument("alert_id", type=int)
def alert_resume(alert_id: int) -> None:
    """Resume a paused blast where it stopped."""
    _control(alert_id, "relaunch", "resumed")


@alert_group.command("cancel")
@click.argument("alert_id", type=int)
def alert_cancel(alert_id: int) -> None:
    """Cancel a blast; whoever has not been sent to yet is skipped."""
    _control(alert_id, "cancel", "cancelled")
