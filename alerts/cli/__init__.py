"""The `alerts` command line: the Flask CLI plus the operator commands, one module per group."""

from __future__ import annotations

import click
from flask import Flask

from ..config import ConfigError
from . import (
    accounts,
    actions,
    alerts,
    api_tokens,
    audit,
    bounces,
    dev,
    journeys,
    ops,
    subscribers,
    twofactor,
    webhooks,
)
from .common import guard
from .database import Main


def _create_app() -> Flask:
    """The app, or one `Error:` line naming the setting that stops it (no traceback)."""
    from .. import create_app  # here: alerts/__init__ imports this package

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group(cls=Main, create_app=_create_app, add_version_option=False)
def main() -> None:
    """Action Alerts: subscriptions, action alerts and their delivery."""


# `alerts dev` belongs to the group itself, so it runs before any app exists: it checks its
# ports first and starts (and stops) everything itself.
main.add_command(dev.dev_command)

COMMANDS = (
    actions.seed_actions_command,
    actions.action_group,
    accounts.create_staff_command,
    accounts.staff_group,
    twofactor.reset_2fa_command,
    dev.dev_command,
    alerts.alert_group,
    bounces.bounces_group,
    subscribers.subscribers_group,
    ops.dkim_group,
    api_tokens.api_token_group,
    webhooks.webhook_group,
    journeys.journey_group,
    audit.audit_command,
)
guard(COMMANDS)


def register(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
