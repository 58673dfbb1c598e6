"""Celery bound to the Flask app the Pallets way: every task runs inside an app context."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery, Task
from flask import Flask
from kombu import Queue

from . import redis_conn, tasknames


def bulk_queue(queue: str) -> str:
    """Where a blast's batches wait: beside the main queue, not in it, so that a confirmation
    or a signature asked for during a million-person blast is not queued behind its batches."""
    return f"{queue}.bulk"


def webhooks_queue(queue: str) -> str:
    """Where webhook deliveries wait: a receiver that stalls holds only the workers taking this
    queue (`-Q NAME.webhooks`), never those sending signups' emails, signatures or blasts."""
    return f"{queue}.webhooks"


def celery_config(app: Flask) -> dict:
    queue = app.config["CELERY_TASK_QUEUE"]
    return {
        "broker_url": redis_conn.celery_url(app.config["REDIS_URL"]),
        "task_ignore_result": True,
        "result_backend": None,
        # A task is acknowledged only once it has run, and a worker that dies mid-task
        # hands it back: with the per-delivery rows that makes a killed batch resumable.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # The visibility timeout is longer than any task may run (time limit below) so Redis
        # never re-delivers a task that is still being worked on; short connect and read
        # timeouts make a publish to a broker that is gone fail fast (the work waits for the
        # sweep) instead of holding a web request.
        "broker_transport_options": {"visibility_timeout": 3600, **redis_conn.broker_options()},
        "task_time_limit": 1800,
        "task_soft_time_limit": 1700,
        "task_default_queue": queue,
        # A worker started without -Q takes from both queues in turn (Redis: round robin), so
        # interactive tasks wait at most for one batch; `-Q NAME.bulk` makes a blast-only worker.
        # A worker without -Q takes the webhooks queue too, so a single-worker install delivers them.
        "task_queues": [Queue(queue), Queue(bulk_queue(queue)), Queue(webhooks_queue(queue))],
        "task_routes": {tasknames.SEND_BATCH: {"queue": bulk_queue(queue)},
                        tasknames.DELIVER_WEBHOOKS: {"queue": webhooks_queue(queue)},
                        tasknames.SWEEP_WEBHOOKS: {"queue": webhooks_queue(queue)}},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": True,
        # No "task-sent" event from the publisher: it is a second Redis publish beside every
        # task (~0.3 ms of a signup's CPU) that only a running Flower would hear; Flower still
        # sees each task from the workers' events (received, started, succeeded).
        "task_send_sent_event": False,
        "beat_schedule": {
            "sweep-stuck-deliveries": {
                "task": tasknames.SWEEP,
                "schedule": timedelta(seconds=app.config.get("SWEEP_INTERVAL_SECONDS", 15)),
            },
            "start-scheduled-alerts": {
                "task": tasknames.START_SCHEDULED,
                "schedule": timedelta(seconds=app.config.get("SCHEDULE_INTERVAL_SECONDS", 10)),
            },
            "record-clicks": {
                "task": tasknames.RECORD_CLICKS,
                "schedule": timedelta(seconds=app.config.get("CLICK_FLUSH_SECONDS", 5)),
            },
            "expire-clicks": {"task": tasknames.EXPIRE_CLICKS, "schedule": timedelta(hours=1)},
            "decide-ab-tests": {
                "task": tasknames.DECIDE_AB_TESTS,
                "schedule": timedelta(seconds=app.config.get("SWEEP_INTERVAL_SECONDS", 60)),
            },
            "send-letters": {
                "task": tasknames.SEND_LETTERS,
                "schedule": timedelta(seconds=app.config.get("LETTER_SWEEP_SECONDS", 30)),
            },
            "run-journeys": {
                "task": tasknames.RUN_JOURNEYS,
                "schedule": timedelta(seconds=app.config.get("JOURNEY_SWEEP_SECONDS", 60)),
            },
            "sweep-webhooks": {
                "task": tasknames.SWEEP_WEBHOOKS,
                "schedule": timedelta(seconds=app.config.get("WEBHOOK_SWEEP_SECONDS", 5)),
            },
        },
        "timezone": "UTC",
        **app.config.get("CELERY", {}),
    }


def celery_init_app(app: Flask) -> Celery[Any]:
    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(app))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery
