"""`alerts dev`: the whole service on one machine with nothing installed but this package."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..celery_app import bulk_queue, webhooks_queue
from ..config import PROJECT_ROOT
from .common import PORT

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.serving import BaseWSGIServer

STAFF_PASSWORD_FILE = "dev-staff-password"
# The dev login's address. A test send checks its address as any send does (a dotted domain
# that may take mail), so "staff@localhost" would be refused; example.org is reserved for
# examples (RFC 2606) and mail to it stays in the dev inbox like everything else here.
DEV_STAFF_EMAIL = "staff@example.org"
WORKER_READY_SECONDS = 60


def quiet_logs(verbose: bool) -> None:
    """Quiet means warnings and errors only: no line per request, no migration's INFO lines.

    A root handler set up here also keeps the migrations' env.py from installing alembic.ini's
    logging (which sets alembic's loggers to INFO)."""
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s [%(name)s] %(message)s")
    if not verbose:
        for name in ("werkzeug", "alembic", "flask_migrate"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _serve_in_thread(app: Flask, host: str, port: int) -> BaseWSGIServer:
    from werkzeug.serving import make_server

    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


def port_problems(host: str, ports: dict[str, int]) -> list[str]:
    """Which of the ports cannot be listened on, checked before anything is started."""
    problems = []
    for flag, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
                problems.append(f"port {port} on {host} {why}: choose another with {flag} PORT")
    return problems


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=PORT, default=5000, show_default=True, help="The web app.")
@click.option("--smtp-port", type=PORT, default=1025, show_default=True, help="The mail catcher's SMTP.")
@click.option("--mail-port", type=PORT, default=8025, show_default=True,
              help="The mail catcher's inbox page.")
@click.option("--verbose", "-v", is_flag=True, help="Show every request and the worker's INFO logs.")
def dev_command(host: str, port: int, smtp_port: int, mail_port: int, verbose: bool) -> None:
    """Run web app, Celery worker and beat, embedded Redis and a mail catcher together.

    The ports are checked before anything starts; whatever way it exits (Ctrl-C, an error
    while starting), everything it started is stopped.
    """
    problems = port_problems(host, {"--port": port, "--smtp-port": smtp_port, "--mail-port": mail_port})
    if problems:
        raise click.ClickException("nothing was started: " + "; ".join(problems))
    quiet_logs(verbose)
    os.environ["ALERTS_DEV"] = "1"  # placeholders are fine here; mail stays in the dev inbox
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    with contextlib.ExitStack() as started:
        try:
            banner, web = _start(started, host, port, smtp_port, mail_port, verbose)
        except KeyboardInterrupt:
            click.echo("Stopping…", err=True)
            return
        click.echo(banner)
        with contextlib.suppress(KeyboardInterrupt):
            web.serve_forever()
        click.echo("Stopping…", err=True)


def _start(started: contextlib.ExitStack, host: str, port: int, smtp_port: int, mail_port: int,
           verbose: bool) -> tuple[str, BaseWSGIServer]:
    """Start each part, registering its stop on `started` at once; return the banner and web server."""
    from werkzeug.serving import make_server

    from .. import create_app  # here, not at the top: alerts/__init__ imports this module
    from ..redis_conn import start_embedded, stop_embedded
    from ..testing.inbox import inbox_app  # dev only
    from ..testing.mailcatcher import CatcherHandler, InboxStore, MailCatcher

    instance = PROJECT_ROOT / "instance"
    private_files(instance)
    if not os.environ.get("REDIS_URL"):
        started.callback(stop_embedded)
    env_redis = os.environ.get("REDIS_URL") or start_embedded(instance)
    catcher = MailCatcher(host, smtp_port, CatcherHandler(InboxStore(instance / "dev-inbox"))).start()
    started.callback(catcher.stop)
    os.environ.update(
        REDIS_URL=env_redis,
        SMTP_URL=os.environ.get("SMTP_URL") or catcher.url,
        BASE_URL=os.environ.get("BASE_URL") or f"http://{host}:{port}",
        # A receiver on this machine (http://127.0.0.1:…) is what a developer tries webhooks with.
        WEBHOOK_ALLOW_INSECURE=os.environ.get("WEBHOOK_ALLOW_INSECURE") or "1",
    )
    app = create_app()
    login, password_file = _prepare(app)
    queue = app.config["CELERY_TASK_QUEUE"]
    quiet = [] if verbose else ["--quiet"]
    level = "--loglevel=INFO" if verbose else "--loglevel=WARNING"
    # Mail and blasts on one worker, webhooks on another: a receiver that stalls holds only the second.
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", *quiet, "-A", "worker", "worker", "--beat", level, "--concurrency=2",
         "-Q", f"{queue},{bulk_queue(queue)}",
         "--schedule", str(Path(app.instance_path) / "celerybeat-schedule")],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    started.callback(_stop, worker)
    webhook_worker = subprocess.Popen(
        [sys.executable, "-m", "celery", *quiet, "-A", "worker", "worker", level, "--concurrency=2",
         "-Q", webhooks_queue(queue), "-n", "webhooks@%h"],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    started.callback(_stop, webhook_worker)
    inbox = _serve_in_thread(inbox_app(catcher), host, mail_port)
    started.callback(inbox.shutdown)
    web = make_server(host, port, app, threaded=True)
    started.callback(web.server_close)
    _wait_for_worker(app, worker)

    lines = [
        click.style("\nAction Alerts is running:", fg="green", bold=True),
        f"  Action Center   http://{host}:{port}/",
        f"  Staff           http://{host}:{port}/staff/  ({login})",
        f"                  the password is kept in {password_file}",
        f"  Dev inbox       http://{host}:{mail_port}/  (SMTP on {catcher.url})",
        f"  Redis           {env_redis}",
        f"  Database        {app.config['SQLALCHEMY_DATABASE_URI']}",
    ]
    unset = [name for name in ("ORG_NAME", "ORG_POSTAL_ADDRESS") if not os.environ.get(name)]
    if unset:
        lines.append(f"  Placeholders    {' and '.join(unset)} (set them in .env, e.g. "
                     "ORG_POSTAL_ADDRESS=\"1 Main St, Springfield, NY 10001\")")
    if not verbose:
        lines.append("  Quiet logs: warnings and errors only (--verbose shows every request).")
    lines.append("Press Ctrl-C to stop everything.\n")
    return "\n".join(lines), web


def private_files(instance: Path) -> None:
    """Everything `alerts dev` writes (the database, keys, Redis's files, logs) is readable by
    this user only: umask 077 for this process and its children, and instance/ itself 0700."""
    os.umask(0o077)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.chmod(0o700)


def _wait_for_worker(app: Flask, worker: subprocess.Popen) -> None:
    """Print the banner only once the worker answers, so nothing of its start-up follows it."""
    celery = app.extensions["celery"]
    deadline = time.monotonic() + WORKER_READY_SECONDS
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise click.ClickException(f"the Celery worker exited ({worker.returncode}) while starting")
        with contextlib.suppress(Exception):  # the broker may not answer yet either
            if celery.control.ping(timeout=0.5):
                return
    click.echo("The Celery worker has not answered yet; carrying on.", err=True)


def _prepare(app: Flask) -> tuple[str, Path]:
    """Migrate, seed, and make sure there is a staff login to print."""
    from flask_migrate import upgrade

    from ..accounts import ensure_dev_staff
    from ..actions import seed_actions
    from ..extensions import db
    from ..journeys import ensure_default

    with app.app_context():
        upgrade()
        seed_actions()
        ensure_default()
        db.session.commit()
        password_file = Path(app.instance_path) / STAFF_PASSWORD_FILE
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        email = ensure_dev_staff(DEV_STAFF_EMAIL, password)
        db.session.commit()
    return f"{email} / {password}", password_file


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass
