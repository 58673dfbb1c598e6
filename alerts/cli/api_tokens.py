"""`alerts api-token …`: tokens for the REST API (/api/v1/)."""

from __future__ import annotations

from datetime import datetime

import click

from .. import apitokens
from ..extensions import db
from .common import ID, record
from .database import Group


@click.group("api-token", cls=Group)  # its commands run inside the app context
def api_token_group() -> None:
    """Make, list and revoke tokens for the REST API."""


@api_token_group.command("create")
@click.option("--name", required=True, help="What uses it, e.g. 'CiviCRM sync'.")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(apitokens.SCOPES),
              help="read, write or send; repeat for more than one.")
def api_token_create(name: str, scopes: tuple[str, ...]) -> None:
    """Make a token and print it alone on stdout: it is shown this once, never again."""
    try:
        _token, plain = apitokens.create(name, list(scopes), created_by="cli")
    except apitokens.TokenError as exc:
        raise click.UsageError(str(exc)) from exc
    db.session.flush()
    record("api_token.create", f"api token {_token.id}", name=_token.name, scopes=sorted(scopes))
    db.session.commit()
    click.echo(plain)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "—"


@api_token_group.command("list")
def api_token_list() -> None:
    """Every token: id, name, scopes, made, last used, revoked (never the secret)."""
    rows = apitokens.tokens()
    if not rows:
        click.echo("No API tokens.")
        return
    click.echo(f"{'ID':>4}  {'NAME':<24} {'SCOPES':<16} {'CREATED':<16} {'LAST USED':<16} REVOKED")
    for t in rows:
        click.echo(f"{t.id:>4}  {t.name[:24]:<24} {t.scopes:<16} {_when(t.created_at):<16} "
                   f"{_when(t.last_used_at):<16} {_when(t.revoked_at)}")


@api_token_group.command("revoke")
@click.argument("token_id", type=ID)
def api_token_revoke(token_id: int) -> None:
    """Stop a token working at once."""
    token = apitokens.revoke(token_id)
    if token is None:
        raise click.ClickException(f"there is no API token {token_id}")
    record("api_token.revoke", f"api token {token_id}", name=token.name)
    db.session.commit()
    click.echo(f"API token {token.id} ({token.name}) revoked.")
