"""The SMTP sink a bench sends to, in its own process, counted from its output, and its ceiling."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import threading
import time

from alerts.testing.ports import free_port
from bench.lib import BENCH_DIR, PYTHON, BenchError
from bench.lib.processes import process_cpu_seconds, stop_process, wait_port

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
