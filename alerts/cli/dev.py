"""`alerts dev`: the whole service on one machine with nothing installed but this package."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click
from werkzeug.serving import make_server

from ..accounts import ensure_dev_staff
from ..actions import seed_actions
from ..config import PROJECT_ROOT
from ..extensions import db
from ..redis_conn import start_embedded, stop_embedded


def _serve_in_thread(app, host: str, port: int):
    server = make_server(host, port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@click.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, help="The web app.")
@click.option("--smtp-port", default=1025, show_default=True, help="The mail catcher's SMTP.")
@click.option("--mail-port", default=8025, show_default=True, help="The mail catcher's inbox page.")
def dev_command(host: str, port: int, smtp_port: int, mail_port: int) -> None:
    """Run web app, Celery worker and beat, embedded Redis and a mail catcher together."""
    from .. import create_app  # here, not at the top: alerts/__init__ imports this module
    from ..mailcatcher import MailCatcher, inbox_app  # dev only: production never loads it

    instance = PROJECT_ROOT / "instance"
    private_files(instance)
    env_redis = os.environ.get("REDIS_URL") or start_embedded(instance)
    catcher = MailCatcher(host, smtp_port).start()
    os.environ.update(
        REDIS_URL=env_redis,
        SMTP_URL=os.environ.get("SMTP_URL") or catcher.url,
        BASE_URL=os.environ.get("BASE_URL") or f"http://{host}:{port}",
    )
    app = create_app()
    login = _prepare(app)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker", "worker", "--beat",
         "--loglevel=INFO", "--concurrency=2",
         "--schedule", str(Path(app.instance_path) / "celerybeat-schedule")],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        start_new_session=True,
    )
    inbox = _serve_in_thread(inbox_app(catcher), host, mail_port)
    web = make_server(host, port, app, threaded=True)
    click.secho("\nAction Alerts is running:", fg="green", bold=True)
    click.echo(f"  Action Center   http://{host}:{port}/")
    click.echo(f"  Staff           http://{host}:{port}/staff/  ({login})")
    click.echo(f"  Dev inbox       http://{host}:{mail_port}/  (SMTP on {catcher.url})")
    click.echo(f"  Redis           {env_redis}")
    click.echo(f"  Database        {app.config['SQLALCHEMY_DATABASE_URI']}")
    click.echo("Press Ctrl-C to stop everything.\n")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        web.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        click.echo("Stopping…")
        web.server_close()
        inbox.shutdown()
        _stop(worker)
        catcher.stop()
        stop_embedded()


def private_files(instance: Path) -> None:
    """Everything `alerts dev` writes (the database, keys, Redis's files, logs) is readable by
    this user only: umask 077 for this process and its children, and instance/ itself 0700."""
    os.umask(0o077)
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    instance.chmod(0o700)


def _prepare(app) -> str:
    """Migrate, seed, and make sure there is a staff login to print."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        seed_actions()
        db.session.commit()
        password_file = Path(app.instance_path) / "dev-staff-password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        email = ensure_dev_staff("staff@localhost", password)
        db.session.commit()
    return f"{email} / {password}"


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
