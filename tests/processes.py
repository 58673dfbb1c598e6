"""Real server and worker processes that fault tests can kill, restart and replace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from celery import Celery

from alerts.testing.mailcatcher import free_port
from alerts.testing.postgres import PostgresServer  # noqa: F401 (re-exported: tests import it from here)
from alerts.testing.redis import RedisServer  # noqa: F401 (re-exported: fixtures import it from here)

ROOT = Path(__file__).resolve().parent.parent


class _ProcessGroup:
    """A process started in a session of its own, with its log; stopped or killed as a group."""

    proc: subprocess.Popen
    log: IO[bytes]

    def kill(self) -> None:
        """SIGKILL to the whole process group: no clean-up, no acks, as a crash would be."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class WorkerProcess(_ProcessGroup):
    """`celery -A worker worker` as production runs it, configured by environment."""

    def __init__(self, env: dict[str, str], logfile: Path, *, beat: bool = False,
                 concurrency: int = 2, name: str = "w1", queues: str | None = None,
                 wrap: Sequence[str] = ()):
        # `wrap`: a command the worker runs under, e.g. `ip netns exec NS` (another host)
        args = [*wrap, sys.executable, "-m", "celery", "-A", "worker", "worker", "--loglevel=INFO",
                f"--concurrency={concurrency}", "--pool=prefork", f"--hostname={name}@%h",
                "--without-gossip", "--without-mingle"]
        if queues:  # `-Q a,b`, as a worker dedicated to some queues is started
            args += ["-Q", queues]
        if beat:
            args += ["--beat", "--schedule", str(logfile.with_suffix(".beat"))]
        self.log = open(logfile, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.logfile = logfile

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until Celery logs that this worker takes tasks (its pool is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b" ready." in self.logfile.read_bytes():
                return
            assert self.proc.poll() is None, f"worker exited: see {self.logfile}"
            time.sleep(0.05)
        raise AssertionError(f"worker not ready after {timeout} s: see {self.logfile}")



class WebProcess(_ProcessGroup):
    """`gunicorn wsgi:app` as production runs it (sync workers), configured by environment."""

    def __init__(self, env: dict[str, str], logfile: Path, *, workers: int = 2):
        self.port = free_port()
        self.log = open(logfile, "ab")  # noqa: SIM115 (closed in stop)
        self.logfile = logfile
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{self.port}",
             "--timeout", "60", "wsgi:app"],
            cwd=ROOT, env={**env, "BASE_URL": self.url}, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until the app answers (any status: /healthz says 503 while a part is down)."""
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gunicorn exited: see {self.logfile}"
            try:
                requests.get(f"{self.url}/healthz", timeout=5)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"gunicorn not answering after {timeout} s: see {self.logfile}")



FAST_RECOVERY = {
    "BLAST_STUCK_SECONDS": "4",
    "BLAST_STALL_SECONDS": "4",  # production: 45
    "SWEEP_INTERVAL_SECONDS": "1",
    "SIGNUP_STALE_SECONDS": "2",  # production: 60
}


def worker_env(app, *, redis_url: str, smtp_url: str, queue: str, engine_defaults: bool = False,
               **extra: str) -> dict[str, str]:
    """The environment of a worker process; `engine_defaults` keeps production's lease and sweep."""
    cfg = app.config
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(
        DATABASE_URL=cfg["SQLALCHEMY_DATABASE_URI"],
        REDIS_URL=redis_url,
        SMTP_URL=smtp_url,
        SECRET_KEY=",".join(cfg["SECRET_KEYS"]),
        BASE_URL=cfg["BASE_URL"],
        MAIL_FROM=cfg["MAIL_FROM"],
        ORG_NAME=cfg["ORG_NAME"],
        ORG_POSTAL_ADDRESS=cfg["ORG_POSTAL_ADDRESS"],
        CELERY_TASK_QUEUE=queue,
        BLAST_BATCH_SIZE="100",
        MAIL_RETRY_BACKOFF="1",
        MAIL_RETRY_BACKOFF_MAX="2",
        STAFF_REQUIRE_2FA="none",  # as the test app: the suite logs in with a password
    )
    for name in FAST_RECOVERY:
        env.pop(name, None)
    if not engine_defaults:
        env.update(FAST_RECOVERY)
    env.update(extra)
    return env


def send_task(redis_url: str, queue: str, name: str, *args) -> None:
    """Enqueue on another broker than the session's (what `blasts.launch` does in production)."""
    client = Celery(broker=redis_url, set_as_current=False)  # the session app stays current
    try:
        client.send_task(name, args=list(args), queue=queue)
    finally:
        client.close()
