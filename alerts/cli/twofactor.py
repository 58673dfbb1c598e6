"""`alerts reset-2fa`: for someone who lost their phone and their recovery codes."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import with_appcontext

from .. import twofactor
from ..accounts import end_sessions
from ..audit import record
from ..extensions import db
from ..models import StaffUser
from .common import cli_actor


@click.command("reset-2fa")
@click.argument("email")
@with_appcontext
def reset_2fa_command(email: str) -> None:
    """Turn off an account's two-factor login and end its sessions (it sets it up again at login)."""
    address = email.strip().lower()
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == address))
    if user is None:
        raise click.UsageError(f"no staff account {address}")
    if not twofactor.enabled(user):
        click.echo(f"{user.email} has no two-factor login: nothing to reset.")
        return
    twofactor.disable(user)
    end_sessions(user.id)
    record(cli_actor(), "staff.2fa.reset", user.email)
    db.session.commit()
    again = " (its role must use it)" if twofactor.required(user, current_app.config) else ""
    click.echo(f"Two-factor login reset for {user.email}, and every session of it ended. It can be set up "
               f"again on /staff/account/2fa after a login with the password{again}.")
