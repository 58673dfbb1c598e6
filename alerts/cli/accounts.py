"""`alerts create-staff` and `alerts staff …`: staff accounts and their roles from the shell.

The operator at the CLI has an owner's authority (they run the service), but the last enabled
owner is kept here as on the staff page. Each change records one audit event.
"""

from __future__ import annotations

import sys
from datetime import datetime

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from .. import accounts, audit
from ..accounts import StaffError, create_staff
from ..extensions import db
from ..models import StaffUser
from ..permissions import ROLES, Role
from .common import cli_actor
from .database import Group

ROLE = click.Choice([r.value for r in ROLES], case_sensitive=False)


@click.command("create-staff")
@click.argument("email")
@click.option("--role", type=ROLE, default=None,
              help="owner, admin, sender, editor or viewer (the first account is owner, later ones editor).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@with_appcontext
def create_staff_command(email: str, role: str | None, password_stdin: bool) -> None:
    """Create a staff login (password from a prompt or --password-stdin)."""
    if password_stdin:
        raw = sys.stdin.buffer.readline().rstrip(b"\r\n")
        try:
            password = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise click.UsageError("the password on standard input is not UTF-8 text") from exc
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    first = db.session.scalar(sa.select(StaffUser.id).limit(1)) is None
    if first and role and role.lower() != Role.OWNER:
        raise click.UsageError("the first account is the owner (it can then make the others): "
                               "leave out --role, or give --role owner")
    try:
        user = create_staff(email, password, role=Role(role.lower()) if role else None)
    except StaffError as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.flush()
    audit.record(cli_actor(), "staff.create", user.email, role=user.role)
    db.session.commit()
    click.echo(f"Staff account {user.email} created ({user.role}).")


@click.group("staff", cls=Group)  # its commands run inside the app context
def staff_group() -> None:
    """List staff accounts, change their roles, disable and enable them."""


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


@staff_group.command("list")
def staff_list() -> None:
    """Every account: email, role, 2FA on/off, last login, disabled or invited."""
    rows = list(db.session.scalars(sa.select(StaffUser).order_by(StaffUser.email)))
    if not rows:
        click.echo("No staff accounts.")
        return
    width = max(5, *(len(u.email) for u in rows))
    click.echo(f"{'EMAIL':<{width}}  {'ROLE':<7} {'2FA':<4} {'LAST LOGIN':<16} STATE")
    for u in rows:
        state = (f"disabled {_when(u.disabled_at)}" if u.disabled_at
                 else "invited" if accounts.pending(u) else "active")
        click.echo(f"{u.email:<{width}}  {u.role:<7} {'on' if u.totp_enabled_at else 'off':<4} "
                   f"{_when(u.last_login_at):<16} {state}")


@staff_group.command("set-role")
@click.argument("email")
@click.argument("role", type=ROLE)
def staff_set_role(email: str, role: str) -> None:
    """Give an account another role (the last owner keeps theirs)."""
    user = accounts.find(email)
    before, after = user.role, Role(role.lower())
    accounts.change_role(user, after)
    audit.record(cli_actor(), "staff.role", user.email, before=before, after=after.value)
    db.session.commit()
    click.echo(f"{user.email} is now {after.value} (was {before}).")


@staff_group.command("disable")
@click.argument("email")
def staff_disable(email: str) -> None:
    """Stop an account logging in, and end its sessions now."""
    user = accounts.find(email)
    accounts.disable(user)
    audit.record(cli_actor(), "staff.disable", user.email)
    db.session.commit()
    click.echo(f"{user.email} is disabled; its sessions have ended.")


@staff_group.command("enable")
@click.argument("email")
def staff_enable(email: str) -> None:
    """Let a disabled account log in again."""
    user = accounts.find(email)
    accounts.enable(user)
    audit.record(cli_actor(), "staff.enable", user.email)
    db.session.commit()
    click.echo(f"{user.email} is enabled.")
