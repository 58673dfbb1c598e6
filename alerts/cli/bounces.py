"""`alerts bounces serve` (the SMTP receiver) and `alerts bounces poll` (an IMAP mailbox)."""

from __future__ import annotations

import imaplib
import signal
import threading
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext

from ..extensions import db
from ..words import plural
from .common import PORT


@click.group("bounces")
def bounces_group() -> None:
    """Receive bounces and complaints: an SMTP receiver or an IMAP mailbox poller."""


@bounces_group.command("serve")
@click.option("--host", envvar="BOUNCE_SMTP_HOST", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for all); env BOUNCE_SMTP_HOST.")
@click.option("--port", envvar="BOUNCE_SMTP_PORT", type=PORT, default=2525, show_default=True,
              help="Port to listen on (the MX is port 25: map or forward it); env BOUNCE_SMTP_PORT.")
@with_appcontext
def serve_command(host: str, port: int) -> None:
    """Receive DSNs and ARF complaints for BOUNCE_DOMAIN by SMTP until stopped."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]  # Flask types the proxy as the app
    if not app.config.get("BOUNCE_DOMAIN"):
        raise click.UsageError("Set BOUNCE_DOMAIN first: the receiver accepts mail only for it.")
    try:
        from ..bounces.server import BounceServer  # here: aiosmtpd is slow to import

        server = BounceServer(app, host, port).start()
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from exc
    click.echo(
        f"Bounce receiver for @{server.domain} on {host}:{server.port} "
        f"(messages up to {server.max_bytes:,} bytes, {server.max_sessions} at once). "
        "Ctrl-C stops it.", err=True
    )
    _wait_for_stop()
    server.stop()
    click.echo("Bounce receiver stopped.", err=True)


@bounces_group.command("poll")
@click.option("--url", envvar="BOUNCE_IMAP_URL", required=True,
              help="imaps://user:password@host[:port]/MAILBOX (imap+starttls://, or imap:// for "
                   "plain text on a trusted network); env BOUNCE_IMAP_URL.")
@click.option("--processed-folder", envvar="BOUNCE_IMAP_PROCESSED_FOLDER", default="Processed",
              show_default=True,
              help="Where processed reports are moved; an empty value deletes them instead.")
@click.option("--every", "interval", type=click.IntRange(0, 7 * 86400), default=0,
              help="Poll again every this many seconds until stopped (default: one pass).")
@with_appcontext
def poll_command(url: str, processed_folder: str, interval: int) -> None:
    """Read bounces and complaints from an IMAP mailbox, touching only those it processed."""
    try:
        from ..bounces.poller import MailboxConfig, PollerConfigError, poll_once  # slow imports

        cfg = MailboxConfig.from_url(url)
    except PollerConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    if cfg.security == "plain" and cfg.host not in ("127.0.0.1", "::1", "localhost"):
        click.echo(f"Warning: the password for {cfg.host} goes over the network unencrypted "
                   "(imap://); use imaps:// or imap+starttls://.", err=True)
    stop = _stop_event() if interval else None
    while True:
        try:
            result = poll_once(cfg, processed_folder=processed_folder or None)
        except (OSError, imaplib.IMAP4.error) as exc:
            if not interval:
                raise click.ClickException(f"IMAP {cfg.host}:{cfg.port}: {exc}") from exc
            click.echo(f"IMAP {cfg.host}:{cfg.port}: {exc}; trying again in {interval}s", err=True)
        else:
            click.echo(
                f"{cfg.mailbox}: {result.examined} examined, {plural(result.reports, 'report')} applied, "
                f"{result.duplicates} already applied, {result.left} left alone, "
                f"{result.failed} failed.", err=True
            )
            for line in result.events:
                click.echo(f"  {line}", err=True)
        finally:
            db.session.remove()
        if stop is None or stop.wait(interval):
            break


def _stop_event() -> threading.Event:
    """Set by Ctrl-C or SIGTERM (docker stop), so a loop ends between passes."""
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return stop


def _wait_for_stop() -> None:
    stop = _stop_event()
    while not stop.wait(1):
        pass
