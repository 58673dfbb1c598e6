"""Logging: one JSON object per line when LOG_FORMAT=json, for log shippers and `jq`.

Each line has `time` (UTC, ISO 8601), `level`, `logger` and `message`, then every field a
call passed in `extra` (`alert_id`, `delivery_id`, `subscriber_id`, …), the Celery task's
id and name when it runs inside a task, and `exc_info` as text when there is one:

    log.info("batch done", extra={"alert_id": 7, "sent": 500})
    {"time": "2026-11-01T12:00:00.123Z", "level": "INFO", "logger": "alerts.tasks",
     "message": "batch done", "alert_id": 7, "sent": 500}
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from celery import Task

# The attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_alerts_json_handler"


# Paths whose next segment is a bearer token (whoever has the URL can act with it). Access
# logs, the dev server's request lines and Referer values get "[redacted]" in its place.
TOKEN_PATH_RE = re.compile(r"(/(?:unsubscribe|confirm|r)/)[^/\s?#\"']+")


def redact_tokens(text: str) -> str:
    """`/unsubscribe/<token>/data.json` -> `/unsubscribe/[redacted]/data.json`, anywhere in text."""
    return TOKEN_PATH_RE.sub(r"\1[redacted]", text) if isinstance(text, str) else text


class RedactTokens(logging.Filter):
    """Rewrites a log record's message and arguments so no token URL reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_tokens(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def redact_request_logs() -> None:
    """The dev server's (werkzeug's) request log lines lose their tokens; idempotent."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        task = _current_task()
        if task is not None:
            entry["task_id"] = task.request.id
            entry["task_name"] = task.name
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _current_task() -> Task | None:
    """The Celery task running in this thread, if any."""
    from celery import current_task

    if not current_task:
        return None
    task = current_task._get_current_object()  # type: ignore[attr-defined]  # celery-types: the proxy as a Task
    return task if getattr(task.request, "id", None) else None


def configure_logging(app: Flask) -> None:
    """With LOG_FORMAT=json, the root logger writes JSON lines to stderr (idempotent).

    Celery keeps its hands off the root logger (worker_hijack_root_logger is off), and the
    signal handlers below put the same formatter on whatever handlers Celery adds for its
    own and its tasks' loggers, so worker output is JSON too.
    """
    redact_request_logs()
    if (app.config.get("LOG_FORMAT") or "text").lower() != "json":
        return
    level = (app.config.get("LOG_LEVEL") or "INFO").upper()
    root = logging.getLogger()
    if not any(getattr(h, _HANDLER_MARK, False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        setattr(handler, _HANDLER_MARK, True)
        root.addHandler(handler)
    root.setLevel(level)
    # Alembic announces each of its plugins at INFO whenever migrations are set up.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    _connect_celery_signals()


def _json_handlers(logger: logging.Logger, **_kwargs: object) -> None:
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


_connected = False


def _connect_celery_signals() -> None:
    global _connected
    if _connected:
        return
    from celery.signals import after_setup_logger, after_setup_task_logger

    after_setup_logger.connect(_json_handlers, weak=False)
    after_setup_task_logger.connect(_json_handlers, weak=False)
    _connected = True
