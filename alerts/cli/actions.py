"""`alerts seed-actions`."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from ..actions import seed_actions
from ..extensions import db


@click.command("seed-actions")
@with_appcontext
def seed_actions_command() -> None:
    """Load the seven Action Center actions (idempotent)."""
    added, present = seed_actions()
    db.session.commit()
    click.echo(f"{added} action(s) added, {present} already present.")
