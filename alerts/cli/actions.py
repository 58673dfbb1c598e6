"""`alerts seed-actions` and `alerts action …`: list, open, close, export and import signatures."""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click
from flask.cli import with_appcontext

from ..actions import ActionError, by_slug, ordered_actions, records, save, seed_actions, set_open, signing
from ..actions import targets as targets_
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
    """Petitions, pledges, letters and calls: create and list them, open or close them, their signatures."""


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


@action_group.command("create")
@click.option("--kind", type=click.Choice(["petition", "pledge", "letter", "call"]), default="petition",
              show_default=True)
@click.option("--title", required=True)
@click.option("--summary", default="", help="The Action Center card's text (also the page's, unless --body).")
@click.option("--body", default=None, help="The page's text (Markdown); default: the summary.")
@click.option("--slug", default=None, help="Default: made from the title.")
@click.option("--cta", "call_to_action", default=None,
              help="The button (default by kind: Sign the Petition, Sign the Pledge, Send the Letter, "
                   "Make the Call).")
@click.option("--target", "target_lines", multiple=True,
              help='A letter\'s "Name, Title <email>" or a call\'s "Name, Title tel:+15551234567"; '
                   'repeat for each; end with [placeholder] for one to replace.')
@click.option("--subject", default=None, help="A letter's subject.")
@click.option("--letter", "letter_text", default=None, help="A letter's fixed text.")
@click.option("--own-words/--no-own-words", default=False, help="Signers may add their own paragraph.")
@click.option("--script", "call_script", default=None, help="What a caller says.")
@click.option("--pledge", "pledge_text", default=None, help="A pledge's words.")
@click.option("--closed", is_flag=True, help="Create it closed (not on the Action Center yet).")
def action_create(kind: str, title: str, summary: str, body: str | None, slug: str | None,
                  call_to_action: str | None, target_lines: tuple[str, ...], subject: str | None,
                  letter_text: str | None, own_words: bool, call_script: str | None,
                  pledge_text: str | None, closed: bool) -> None:
    """Create an action (a petition, pledge, letter or call) and print its slug."""
    buttons = {"petition": "Sign the Petition", "pledge": "Sign the Pledge", "letter": "Send the Letter",
               "call": "Make the Call"}
    if target_lines and kind not in ("letter", "call"):
        raise click.UsageError(f"--target: a {kind} has no targets (only letters and calls do)")
    if kind in ("letter", "call") and not target_lines:
        raise click.UsageError(f"--target: a {kind} needs at least one target")
    try:
        wanted = [targets_.parse(line, kind, f"--target {line!r}") for line in target_lines]
        targets_.check_count(wanted)
        action = save(None, title=title, slug=slug, summary=summary,
                      call_to_action=call_to_action or buttons[kind], kind=kind, url=None,
                      is_open=not closed, body=body if body is not None else summary,
                      pledge_text=pledge_text, allow_comments=own_words, letter_subject=subject,
                      letter_text=letter_text, call_script=call_script)
        db.session.flush()
        targets_.set_targets(action, wanted)
    except targets_.TargetError as exc:
        raise click.UsageError(str(exc)) from None
    except ActionError as exc:
        option = {"letter_subject": "--subject", "letter_text": "--letter"}.get(exc.field, f"--{exc.field}")
        raise click.UsageError(f"{option}: {exc}") from None
    record("action.create", f"action {action.id}", slug=action.slug, kind=kind, targets=len(wanted))
    db.session.commit()
    click.echo(action.slug)


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
