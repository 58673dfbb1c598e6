"""Web benches: gunicorn with the settings an app and its floor share, and one visitor's client."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from alerts.testing.ports import free_port
from bench.lib import PROJECT_ROOT, PYTHON, BenchError
from bench.lib.processes import stop_process, wait_port

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
