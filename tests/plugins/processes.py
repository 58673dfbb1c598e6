"""Fixtures for process-level tests: a Redis of the test's own and real worker processes."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import blasts
from tests.processes import RedisServer, WebProcess, WorkerProcess, send_task, worker_env


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def workers(app, smtp, own_redis, tmp_path):
    """Start worker processes on the test's own Redis and queue; all stopped at the end."""
    queue = f"fault-{uuid.uuid4().hex[:8]}"
    started: list[WorkerProcess | WebProcess] = []

    class Pool:
        redis = own_redis
        name = queue

        def start(self, *, beat: bool = True, name: str = "w", concurrency: int = 2,
                  engine_defaults: bool = False, queues: str | None = None,
                  **extra) -> WorkerProcess:
            env = worker_env(app, redis_url=own_redis.url, smtp_url=smtp.url, queue=queue,
                             engine_defaults=engine_defaults, **extra)
            proc = WorkerProcess(env, tmp_path / f"{name}.log", beat=beat, name=name,
                                 concurrency=concurrency, queues=queues)
            started.append(proc)
            return proc

        def web(self, **extra: str) -> WebProcess:
            """The web app under gunicorn on the same Redis, database and SMTP as the workers."""
            env = worker_env(app, redis_url=own_redis.url, smtp_url=smtp.url, queue=queue, **extra)
            proc = WebProcess(env, tmp_path / "web.log")
            started.append(proc)
            proc.wait_ready()
            return proc

        def launch(self, alert_id: int) -> int:
            total = blasts.start_blast(alert_id)
            send_task(own_redis.url, queue, "alerts.tasks.dispatch_blast", alert_id)
            return total

    yield Pool()
    for proc in started:
        proc.stop()
