"""`alerts create-staff`."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from ..accounts import StaffError, create_staff
from ..extensions import db
from .common import record


@click.command("create-staff")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_staff_command(email: str, password_stdin: bool) -> None:
    """Create a staff login (password from a prompt or --password-stdin)."""
    if password_stdin:
        raw = sys.stdin.buffer.readline().rstrip(b"\r\n")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError("the password on standard input is not UTF-8 text") from exc
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_staff(email, password)
    except StaffError as exc:
        raise click.UsageError(str(exc)) from exc
    record("staff.create", f"staff {user.email}", role=user.role)
    db.session.commit()
    click.echo(f"Staff account {user.email} created.")
