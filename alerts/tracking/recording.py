"""Clicks go to a Redis list first (one RPUSH, then the redirect answers); a beat task drains it.

A record is `time|alert|delivery|link|reason` (reason: why it is a machine's, or empty).
The list is in Redis, so a web process that restarts loses nothing it has answered.
"""

from __future__ import annotations

import logging
import time

import redis
from flask import current_app

from .. import redis_conn

log = logging.getLogger(__name__)


def queue_key() -> str:
    """Named after the Celery queue, so test runs and deployments sharing a Redis stay apart."""
    return f"{current_app.config['CELERY_TASK_QUEUE']}:clicks"


def client() -> redis.Redis:
    """One connection pool per process for the redirect."""
    found = current_app.extensions.get("alerts.click_redis")
    if found is None:
        found = redis_conn.client(current_app.config["REDIS_URL"])
        current_app.extensions["alerts.click_redis"] = found
    return found


def encode(at: float, alert_id: int, delivery_id: int, link_index: int, reason: str) -> str:
    return f"{at:.3f}|{alert_id}|{delivery_id}|{link_index}|{reason}"


def decode(item: bytes | str) -> tuple[float, int, int, int, str] | None:
    try:
        at, alert_id, delivery_id, link_index, reason = (
            item.decode() if isinstance(item, bytes) else item).split("|")
        return float(at), int(alert_id), int(delivery_id), int(link_index), reason
    except ValueError:
        return None


def record(alert_id: int, delivery_id: int, link_index: int, reason: str) -> bool:
    """Queue one click for recording; False (logged) when Redis is away: the visitor still goes on."""
    try:
        client().rpush(queue_key(), encode(time.time(), alert_id, delivery_id, link_index, reason))
    except redis.RedisError as exc:
        log.error("click not recorded, Redis unavailable: %s", exc,
                  extra={"alert_id": alert_id, "delivery_id": delivery_id})
        return False
    return True
