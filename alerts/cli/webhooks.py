"""`alerts webhook …`: add an endpoint (its id and secret printed once), list, remove."""

from __future__ import annotations

from urllib.parse import urlsplit

import click

from ..extensions import db
from ..webhooks import EVENT_TYPES, endpoints
from .common import ID, record
from .database import Group


@click.group("webhook", cls=Group)  # its commands run inside the app context
def webhook_group() -> None:
    """Signed webhooks: the endpoints events are posted to."""


@webhook_group.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True, required=True, metavar="TYPE",
              help=f"An event type to send (repeat for more): {', '.join(EVENT_TYPES)}.")
def webhook_add(url: str, events: tuple[str, ...]) -> None:
    """Register URL for these event types; prints `ID SECRET` (the secret is shown this once)."""
    try:
        endpoint = endpoints.add(url, events, by="cli")
    except endpoints.EndpointError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.flush()
    record("webhook.add", f"webhook {endpoint.id}", host=urlsplit(endpoint.url).netloc, events=sorted(events))
    db.session.commit()
    click.echo(f"{endpoint.id} {endpoint.secret}")


@webhook_group.command("list")
def webhook_list() -> None:
    """Every endpoint: id, state, failing since, events, URL."""
    rows = endpoints.listed()
    if not rows:
        click.echo("No webhook endpoints (add one with `alerts webhook add URL --event TYPE`).")
        return
    click.echo(f"{'ID':>4} {'STATE':<9} {'FAILING SINCE':<17} {'EVENTS':<40} URL")
    for e in rows:
        state = "enabled" if e.enabled else "disabled"
        since = f"{e.failing_since:%Y-%m-%d %H:%M}" if e.failing_since else "-"
        click.echo(f"{e.id:>4} {state:<9} {since:<17} {','.join(e.events):<40} {e.url}")


@webhook_group.command("remove")
@click.argument("endpoint_id", type=ID, metavar="ID")
def webhook_remove(endpoint_id: int) -> None:
    """Stop sending to an endpoint; its messages not yet sent are dropped."""
    if not endpoints.remove(endpoint_id):
        raise click.ClickException(f"no webhook endpoint {endpoint_id} (see `alerts webhook list`)")
    record("webhook.remove", f"webhook {endpoint_id}")
    db.session.commit()
    click.echo(f"Webhook endpoint {endpoint_id} removed.")
