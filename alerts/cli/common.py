"""What every `alerts` command shares: its parameter types and how a refusal is printed.

An id is a database integer (1 to 2^63 - 1), a port is 1 to 65535: anything else is a usage
error naming the parameter, not an overflow deep in a driver. Every command is guarded in one
place (`guard`): a value that is not UTF-8 text (bytes that arrived on argv or in the
environment undecoded) is refused naming its parameter, and the project's own refusals
(a bad setting, a blast that cannot start...) print as one `Error:` line with a non-zero
exit, never a traceback.
"""

from __future__ import annotations

import functools
import getpass
from collections.abc import Callable, Iterable
from typing import Any

import click

from .. import audit
from ..accounts import StaffError
from ..actions.catalog import ActionError
from ..actions.records import SignerFileError
from ..audiences.rules import AudienceError
from ..audit import Actor
from ..blasts.abtest import AbTestError
from ..blasts.approval import ApprovalError
from ..blasts.compose import ComposeError
from ..blasts.state import BlastError
from ..csvin import CsvFileError
from ..journeys import JourneyError
from ..mail.dkim import DkimConfigError
from ..mail.smtp import MailConfigError
from ..models.base import MAX_ID
from ..subscribers.import_report import ImportFileError

ID = click.IntRange(1, MAX_ID)


def record(action: str, target: str | None = None, **detail: Any) -> None:
    """One audit row for what this command changed (the command commits it with the change)."""
    audit.record(cli_actor(), action, target, **detail)


def cli_actor() -> Actor:
    """The operator at the command line, as the audit trail names them: their login name."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = "operator"
    return Actor("cli", f"cli:{name}")
PORT = click.IntRange(1, 65535)

# The project's own "this cannot be done as asked" errors; their message is for the operator.
REFUSALS: tuple[type[Exception], ...] = (
    StaffError, ActionError, SignerFileError, AudienceError, AbTestError, ComposeError, BlastError,
    ApprovalError, CsvFileError, DkimConfigError, MailConfigError, ImportFileError, JourneyError,
)


def _not_text(value: object) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list | tuple):
        return any(_not_text(v) for v in value)
    return False


def _check_text(ctx: click.Context, values: dict) -> None:
    for param in ctx.command.params:
        if _not_text(values.get(param.name)):
            raise click.BadParameter(
                "the value is not UTF-8 text (it holds bytes that are not UTF-8); type it again, or "
                "convert the file or setting it came from to UTF-8", ctx=ctx, param=param)


def _guarded(callback: Callable) -> Callable:
    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        _check_text(click.get_current_context(), kwargs)
        try:
            return callback(*args, **kwargs)
        except REFUSALS as exc:
            raise click.ClickException(str(exc)) from exc

    run.alerts_guarded = True  # type: ignore[attr-defined]  # a marker; mypy models no function attributes
    return run


def guard(commands: Iterable[click.Command]) -> None:
    """Guard these commands and every subcommand of a group among them (once each)."""
    for command in commands:
        if command.callback is not None and not getattr(command.callback, "alerts_guarded", False):
            command.callback = _guarded(command.callback)
        if isinstance(command, click.Group):
            guard(command.commands.values())
