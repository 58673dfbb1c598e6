"""The command line's answer when the database cannot be used: one line naming it, exit status 1."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from flask.cli import AppGroup, FlaskGroup, ScriptInfo

from ..extensions import DATABASE_DOWN, database_down_reason


def database_down_message(ctx: click.Context, exc: BaseException) -> str:
    """Which database (DATABASE_URL, its password hidden) and what its driver said."""
    try:
        uri = ctx.ensure_object(ScriptInfo).load_app().config["SQLALCHEMY_DATABASE_URI"]
        where = sa.engine.make_url(uri).render_as_string(hide_password=True)
    except Exception:  # (naming it is a courtesy: the message stands without)
        where = "DATABASE_URL"
    return f"the database is not answering ({where}): {database_down_reason(exc)}"


class _DatabaseErrors(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DATABASE_DOWN as exc:
            raise click.ClickException(database_down_message(ctx, exc)) from exc


class Group(_DatabaseErrors, AppGroup):
    """A command group run in the app context (`alerts alert …`, or `flask --app wsgi alert …`)
    whose commands end with one line naming the database, not a traceback, when it is down."""


class Main(_DatabaseErrors, FlaskGroup):
    """The `alerts` command itself, with the same answer for every command under it."""
