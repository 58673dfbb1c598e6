"""Processes the benches start: ports, stopping, and what /proc says of them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from alerts.testing import ports, procfs
from bench.lib import BenchError


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """`alerts.testing.ports.wait_port`, failing as a bench does (a BenchError)."""
    try:
        ports.wait_port(host, port, timeout, proc)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from exc


def stop_process(proc: subprocess.Popen | None, timeout: float = 15, group: bool = False) -> None:
    """SIGTERM (to its process group when it leads one), then SIGKILL; this process's own child."""
    if proc is None or proc.poll() is not None:
        return

    def send(sig):
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally-blocks stop every server the bench started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc (no psutil needed)."""
    below = procfs.children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(below.get(p, []))
    return out


def vm_hwm_kib(pid: int) -> int | None:
    """Peak resident set size of a live process (VmHWM), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def process_cpu_seconds(pid: int) -> float:
    fields = procfs.stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    return sum(process_cpu_seconds(p) for p in descendants(pid))
