"""What /proc says of a process and its children: for tests and benchmarks that watch trees."""

from __future__ import annotations

import os
from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces, so split after the last
    ")"): [0] the state, [1] the parent pid, [11]/[12] user/system ticks, [19] the start time.
    None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()


def cmdline(pid: int, gone: str = "") -> str:
    """The process's command line, its arguments joined by spaces; `gone` once it has ended."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return gone


def children() -> dict[int, list[int]]:
    """Every live process's children, by parent pid."""
    found: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := stat_fields(int(entry))) is not None:
            found.setdefault(int(fields[1]), []).append(int(entry))
    return found
