"""`alerts audit`: the audit trail on the command line, as a table or as JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from .. import audit
from ..extensions import db

LIMIT_DEFAULT = 200


def _since(value: str | None) -> datetime | None:
    """An ISO 8601 time (a date alone is its midnight UTC; no offset means UTC)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time, e.g. 2026-12-01 or "
                                 "2026-12-01T09:30:00+01:00", param_hint="--since") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command("audit")
@click.option("--since", metavar="ISO8601", help="Only events at or after this time.")
@click.option("--action", default="", metavar="PREFIX", help="Only actions starting so, e.g. alert.")
@click.option("--actor", default="", metavar="TEXT", help="Only actors whose name holds this.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=LIMIT_DEFAULT, show_default=True,
              help="At most this many, newest first.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array of events instead of a table.")
@with_appcontext
def audit_command(since: str | None, action: str, actor: str, limit: int, as_json: bool) -> None:
    """Every staff, API and command-line change: who, what, when and from where (newest first)."""
    filters = audit.Filters(actor=actor, action=action, since=_since(since))
    events = list(db.session.scalars(filters.query().limit(limit)))
    if as_json:
        click.echo(json.dumps([audit.as_dict(e) for e in events], indent=2, default=str))
        return
    if not events:
        click.echo("No audit events match.", err=True)
        return
    click.echo(f"{'WHEN (UTC)':<20} {'WHO':<36} {'FROM':<16} {'WHAT':<26} ON")
    for e in events:
        who = f"{e.actor_kind}:{e.actor}" if e.actor_kind == "staff" else e.actor
        click.echo(f"{e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} {who[:36]:<36} {(e.ip or '-')[:16]:<16} "
                   f"{e.action[:26]:<26} {e.target or ''}")
