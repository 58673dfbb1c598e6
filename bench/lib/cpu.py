"""CPU and memory measured around a run: peak RSS of worker trees, the machine's CPU, other load."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from alerts.testing.procfs import cmdline, stat_fields
from bench.lib.processes import descendants, process_cpu_seconds, vm_hwm_kib


class PeakRss:
    """Samples VmHWM of a set of process trees; keeps each process's highest reading."""

    def __init__(self, roots: dict[str, int]):
        self.roots = roots
        self.peaks: dict[int, dict] = {}
        self.cpu: dict[int, float] = {}
        self.cpu_start: dict[int, float] = {}

    def baseline(self) -> None:
        """CPU counted from here on (start-up is not the blast's)."""
        self.sample()
        self.cpu_start = dict(self.cpu)

    def sample(self) -> None:
        for label, root in self.roots.items():
            for pid in descendants(root):
                kib = vm_hwm_kib(pid)
                if kib is None:
                    continue
                item = self.peaks.setdefault(
                    pid, {"worker": label, "pid": pid, "role": "main" if pid == root else "pool child",
                          "peak_rss_mb": 0.0})
                item["peak_rss_mb"] = max(item["peak_rss_mb"], round(kib / 1024, 1))
                self.cpu[pid] = process_cpu_seconds(pid)

    def result(self) -> list[dict]:
        rows = sorted(self.peaks.values(), key=lambda r: (r["worker"], r["role"] != "main", r["pid"]))
        for row in rows:
            pid = row["pid"]
            row["cpu_seconds"] = round(self.cpu.get(pid, 0.0) - self.cpu_start.get(pid, 0.0), 2)
        return rows


class Sampler(threading.Thread):
    def __init__(self, fn, every: float = 0.25):
        super().__init__(daemon=True)
        self.fn, self.every = fn, every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            self.fn()

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.fn()


class MachineCpu:
    """Share of all CPUs busy between start() and stop(), from /proc/stat."""

    @staticmethod
    def _read() -> tuple[int, int]:
        fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]), idle

    def start(self) -> MachineCpu:
        self.t0, self.i0 = self._read()
        return self

    def stop(self) -> float:
        t1, i1 = self._read()
        total = t1 - self.t0
        self.busy_seconds = (total - (i1 - self.i0)) / os.sysconf("SC_CLK_TCK")
        return round(100 * (1 - (i1 - self.i0) / total), 1) if total else 0.0


def cpu_by_process() -> dict[int, tuple[str, float]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            fields = stat_fields(pid)
            if fields:
                out[pid] = (cmdline(pid)[:120] or f"[{pid}]", process_cpu_seconds(pid))
    return out


def cpu_top(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], n: int = 8,
            exclude: tuple[str, ...] = ()) -> list[dict]:
    """The processes that used the most CPU between two `cpu_by_process` snapshots."""
    rows = []
    for pid, (name, cpu) in after.items():
        used = cpu - before.get(pid, (name, 0.0))[1]
        if used > 0.005 and not name.startswith(exclude):
            rows.append({"pid": pid, "process": name, "cpu_seconds": round(used, 2)})
    rows.sort(key=lambda r: -r["cpu_seconds"])
    return rows[:n]


def foreign_cpu(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                wall: float, busy_seconds: float) -> dict:
    """CPU the machine spent outside this benchmark's processes (and PostgreSQL's) meanwhile.

    The machine may be shared: a run that competed with something else says so. Busy time
    minus our processes' time also counts processes that ended during the run and the
    kernel's share (loopback networking), so it is an upper bound on the competition.
    """
    mine = set(descendants(os.getpid()))
    ours = 0.0
    names: dict[str, float] = {}
    for pid, (name, cpu) in after.items():
        delta = cpu - before.get(pid, (name, 0.0))[1]
        if pid in mine or name.startswith("postgres"):
            ours += delta
        elif delta > 0.05:
            key = name.split(" -")[0][-60:]
            names[key] = names.get(key, 0.0) + delta
    outside = max(0.0, busy_seconds - ours)
    top = sorted(names.items(), key=lambda kv: -kv[1])[:3]
    return {"cpu_seconds": round(outside, 2), "cores": round(outside / wall, 2) if wall else 0.0,
            "ours_cores": round(ours / wall, 2) if wall else 0.0,
            "top": [{"process": k, "cpu_seconds": round(v, 2)} for k, v in top]}


def other_load_text(load: dict) -> str:
    if not load["cpu_seconds"]:
        return "none"
    names = ", ".join(t["process"].rsplit("/", 1)[-1] for t in load["top"]) or "kernel"
    return (f"{load['cores']} cores outside the bench's processes (seen: {names}); "
            f"bench's own: {load['ours_cores']} cores")
