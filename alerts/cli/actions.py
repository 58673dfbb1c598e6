"""`alerts seed-actions` and `alerts action …`: list, open, close, export and import signatures."""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click
from flask.cli import with_appcontext

from ..actions import by_slug, ordered_actions, records, seed_actions, set_open, signing
from ..extensions import db
from ..models import Action
from ..words import plural
from .common import record
from .database import Group


@click.command("seed-actions")
@with_appcontext
def seed_actions_command() -> None:
    """Load the seven Action Center actions (idempotent)."""
    added, present = seed_actions()
    if added:
        record("action.seed", None, added=added)
    db.session.commit()
    click.echo(f"{plural(added, 'action')} added, {present} already present.")


@click.group("action", cls=Group)  # its commands run inside the app context
def action_group() -> None:
    """Petitions and pledges: list them, open or close them, their signatures."""


def _action(slug: str) -> Action:
    action = by_slug(slug)
    if action is None:
        raise click.ClickException(f"no action with the slug {slug!r} (see `alerts action list`)")
    return action


@action_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="A JSON list instead of a table.")
def action_list(as_json: bool) -> None:
    """Every action in Action Center order, with its counted signatures and goal."""
    counts = signing.counts_by_action()
    items = [
        {"slug": a.slug, "title": a.title, "kind": a.kind, "open": a.is_open,
         "signatures": counts.get(a.id, 0), "goal": a.goal, "target": a.target, "url": a.url}
        for a in ordered_actions()
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'STATE':<6} {'KIND':<8} {'SIGNED':>8}{'/GOAL':<9} SLUG")
    for item in items:
        goal = f"/{item['goal']:,}" if item["goal"] else ""
        state = "open  " if item["open"] else "closed"
        click.echo(f"{state} {item['kind']:<8} {item['signatures']:>8,}{goal:<9} {item['slug']}")


def _set(slug: str, is_open: bool) -> None:
    action = set_open(slug, is_open) or _action(slug)  # the second raises, naming the slug
    record("action.open" if is_open else "action.close", f"action {action.id}", slug=slug)
    db.session.commit()
    click.echo(f"{slug}: {'open' if is_open else 'closed'}")


@action_group.command("open")
@click.argument("slug")
def action_open(slug: str) -> None:
    """Open an action: listed on the Action Center, in new alerts, and signable."""
    _set(slug, True)


@action_group.command("close")
@click.argument("slug")
def action_close(slug: str) -> None:
    """Close an action: it shows its final count and accepts no more signatures."""
    _set(slug, False)


@action_group.command("signatures")
@click.argument("slug")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True)
def action_signatures(slug: str, fmt: str) -> None:
    """Write the action's counted signatures to stdout (for delivering to the target)."""
    action = _action(slug)
    if fmt == "json":
        click.echo(json.dumps(list(records.export_rows(action.id)), indent=2, ensure_ascii=False))
        return
    for piece in records.export_csv(action.id):
        sys.stdout.write(piece)


@action_group.command("import-signatures")
@click.argument("slug")
@click.argument("file", type=click.File("rb"))
def action_import_signatures(slug: str, file: BinaryIO) -> None:
    """Add the signers of an action hosted elsewhere (CSV with a header row naming `email`)."""
    action = _action(slug)
    try:
        report = records.import_signers(action, file)
    except records.SignerFileError as exc:
        click.echo(f"Error: {file.name}: {exc}; nothing was imported.", err=True)
        sys.exit(2)
    record("action.signatures_import", f"action {action.id}", slug=slug, summary=report.summary())
    db.session.commit()
    for line, email, why in report.rejected[:50]:
        click.echo(f"line {line}: {why}: {email!r}", err=True)
    click.echo(f"{slug}: {report.summary()}")
