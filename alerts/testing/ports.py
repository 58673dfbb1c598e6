"""Loopback ports for the servers tests and benchmarks start, and waiting for one to listen."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time

from alerts.mail.smtp import free_port

__all__ = ["free_port", "wait_port"]


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Until something accepts on host:port; a RuntimeError once `proc` exits or time is up."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            command = proc.args if isinstance(proc.args, str | bytes | os.PathLike) else proc.args[0]
            raise RuntimeError(
                f"{os.fsdecode(command)} exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.05)
