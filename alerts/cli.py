"""The `alerts` command line: the Flask CLI plus the operator commands of the contract."""

from __future__ import annotations

import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

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


@click.command("seed-actions")
def seed_actions_command() -> None:
    """Load the seven Action Center actions (idempotent)."""
    from .seed import seed_actions

    added, present = seed_actions()
    click.echo(f"{added} action(s) added, {present} already present.")


@click.command("create-staff")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
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
