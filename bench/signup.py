"""Signup benchmark: concurrent signups against the app served by gunicorn on loopback.

    python bench/signup.py --signups 5000 [--clients 8] [--rate 500] [--json out.json]

Starts Redis (REDIS_URL, or a redis-server of its own), a fresh database (SQLite in a temporary
directory unless --database-url names one whose name contains 'bench') and gunicorn serving
`wsgi:app` on 127.0.0.1. Each simulated visitor is an asyncio client on raw streams (HTTP/1.1,
keep-alive when the server allows it): one GET / for its session cookie and CSRF token, then
POST /subscribe with a new address each time. No Celery worker runs, so every confirmation
that was queued is still in Redis; afterwards the bench checks that each accepted signup has
its subscriber row and exactly one queued send_confirmation task naming it: nothing lost.

Closed loop by default (--clients visitors, each sending as soon as its last answer came);
--rate R sends at a fixed R signups per second instead and measures latency from each
signup's scheduled time, so queueing shows up in p99. All load comes from 127.0.0.1, so the
per-IP SUBSCRIBE_RATE_LIMIT is raised for the run (the output says to what).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import benchlib
from benchlib import BenchError

TARGET_RPS = 500
TARGET_P99_MS = 50
RATE_LIMIT = "1000000/minute"
TOKEN_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')
DONE_MARK = b"Check your inbox"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Signup benchmark (see the module docstring).")
    p.add_argument("--signups", type=int, default=5000, help="signups in the measured phase")
    p.add_argument("--warmup", type=int, default=200, help="signups before measuring (also checked)")
    p.add_argument("--clients", type=int, default=8, help="concurrent visitors (connections)")
    p.add_argument("--rate", type=float, default=None,
                   help="open loop: signups per second (latency counted from the scheduled time)")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    p.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    p.add_argument("--database-url", default=None,
                   help="a database the bench may wipe (name must contain 'bench'); default: SQLite")
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment setting for the app")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one request may take")
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


# -- the HTTP client ---------------------------------------------------------------------------


class HttpError(Exception):
    pass


@dataclass
class Visitor:
    """One browser: a cookie jar of one cookie, a CSRF token, one connection at a time."""

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

    async def get_token(self) -> None:
        status, body = await self.request("GET", "/")
        match = TOKEN_RE.search(body)
        if status != 200 or not match:
            raise HttpError(f"GET / answered {status} without a CSRF token")
        self.token = match.group(1).decode()

    async def subscribe(self, email: str) -> int:
        form = urlencode({"csrf_token": self.token, "email": email, "website": ""}).encode()
        status, body = await self.request("POST", "/subscribe", form, "application/x-www-form-urlencoded")
        if status == 200 and DONE_MARK not in body:
            raise HttpError("POST /subscribe answered 200 without the answer page")
        return status


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


async def load(host: str, port: int, emails: list[str], clients: int, rate: float | None,
               timeout: float, out: Outcome, visitors: list[Visitor] | None = None):
    """Every address in `emails` signed up once by `clients` visitors; returns the wall time."""
    if visitors is None:
        visitors = [Visitor(host, port, timeout) for _ in range(clients)]
    # Each visitor fetches its form (session cookie + CSRF token) before the clock starts.
    await asyncio.gather(*(v.get_token() for v in visitors if v.token is None))
    loop = asyncio.get_running_loop()
    next_index = 0
    start = loop.time()

    async def visitor_loop(v: Visitor) -> None:
        nonlocal next_index
        while next_index < len(emails):
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
                status = await v.subscribe(emails[i])
            except (TimeoutError, HttpError, OSError) as exc:
                out.errors.append(f"{emails[i]}: {exc!r}")
                await v.close()
                continue
            out.latencies_ms.append(1000 * (loop.time() - t0))
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status in (200, 303):  # 303: redirected to the answer page (redirect after POST)
                out.accepted.append(emails[i])

    await asyncio.gather(*(visitor_loop(v) for v in visitors))
    wall = loop.time() - start
    return wall, visitors


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[k], 2)


# -- checking the outcome ----------------------------------------------------------------------


def queued_confirmations(redis_url: str, queue: str) -> tuple[int, list[int]]:
    """LLEN of the Celery queue, and the subscriber ids its send_confirmation messages name."""
    from alerts.redis_conn import client

    conn = client(redis_url)
    try:
        length = conn.llen(queue)
        ids = []
        for raw in conn.lrange(queue, 0, -1):
            message = json.loads(raw)
            if message.get("headers", {}).get("task") != "alerts.tasks.send_confirmation":
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            ids.append(int(args[0]))
        return length, ids
    finally:
        conn.delete(queue)
        conn.close()


def stored_subscribers(app, prefix: str) -> dict[str, tuple[int, str, int]]:
    import sqlalchemy as sa

    from alerts.extensions import db
    from alerts.models import ConsentRecord, Subscriber

    with app.app_context():
        rows = db.session.execute(
            sa.select(Subscriber.email, Subscriber.id, Subscriber.status, sa.func.count(ConsentRecord.id))
            .outerjoin(ConsentRecord, ConsentRecord.subscriber_id == Subscriber.id)
            .where(Subscriber.email.like(f"{prefix}%"))
            .group_by(Subscriber.id)
        ).all()
        db.session.remove()
    return {email: (sid, status, consents) for email, sid, status, consents in rows}


# -- the run ---------------------------------------------------------------------------------------


def run(args, workdir: Path) -> dict:
    if args.signups < 1 or args.clients < 1:
        raise BenchError("--signups and --clients must be at least 1")
    run_id = secrets.token_hex(4)
    queue = f"bench-signup-{run_id}"
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    benchlib.check_database_url(database_url, args.force_drop)
    redis = benchlib.RedisServer.start(workdir, args.redis_url)
    server = None
    try:
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "CELERY_TASK_QUEUE": queue,
            "SUBSCRIBE_RATE_LIMIT": RATE_LIMIT,
            "BASE_URL": "https://alerts.example.org",
            "SMTP_URL": "smtp://127.0.0.1:9",  # nothing sends: no worker runs during the bench
        }
        env = benchlib.apply_settings(settings, args.settings)

        from alerts import create_app
        from alerts.actions import seed_actions
        from alerts.extensions import db

        app = create_app()
        benchlib.fresh_schema(app)
        with app.app_context():
            seed_actions()
            db.session.commit()
            db.session.remove()

        port = benchlib.free_port()
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(args.gunicorn_workers),
               "-k", args.worker_class, "--threads", str(args.threads), "-b", f"127.0.0.1:{port}",
               "--backlog", "2048", "--log-level", "warning", "--timeout", "60", "wsgi:app"]
        log = open(workdir / "gunicorn.log", "wb")  # noqa: SIM115 (closed once the child has it)
        server = subprocess.Popen(cmd, cwd=benchlib.PROJECT_ROOT, env=env, stdout=log, stderr=log,
                                  start_new_session=True)
        log.close()
        benchlib.wait_port("127.0.0.1", port, 30, server)
        _wait_healthy(port, server)

        prefix = f"signup-{run_id}-"
        warm = [f"{prefix}w{i:06d}@example.net" for i in range(args.warmup)]
        emails = [f"{prefix}{i:07d}@example.net" for i in range(args.signups)]
        warm_out, out = Outcome(), Outcome()

        async def both():
            _, visitors = await load("127.0.0.1", port, warm, args.clients, None, args.timeout, warm_out)
            machine = benchlib.MachineCpu().start()
            before = benchlib.cpu_by_process()
            wall, visitors = await load("127.0.0.1", port, emails, args.clients, args.rate, args.timeout,
                                        out, visitors)
            busy = machine.stop()
            after = benchlib.cpu_by_process()
            top = benchlib.cpu_top(before, after)
            foreign = benchlib.foreign_cpu(before, after, wall, machine.busy_seconds)
            connects = sum(v.connects for v in visitors)
            for v in visitors:
                await v.close()
            return wall, busy, top, connects, foreign

        print(f"[bench] {args.warmup} warm-up signups, then {args.signups:,} measured "
              f"({args.clients} clients{f', {args.rate:g}/s' if args.rate else ''})", file=sys.stderr)
        wall, busy, cpu_top, connects, foreign = asyncio.run(both())
        benchlib.stop_process(server, timeout=20, group=True)
        server = None

        # Nothing lost: every accepted signup stored, with its confirmation queued once.
        accepted = warm_out.accepted + out.accepted
        stored = stored_subscribers(app, prefix)
        length, queued_ids = queued_confirmations(redis.url, queue)
        missing_rows = [e for e in accepted if e not in stored]
        wanted_ids = {stored[e][0] for e in accepted if e in stored}
        queued_set = set(queued_ids)
        not_queued = sorted(wanted_ids - queued_set)
        duplicates = len(queued_ids) - len(queued_set)
        lost = len(missing_rows) + len(not_queued)

        latencies = out.latencies_ms
        rps = len(latencies) / wall if wall else 0.0
        p99 = percentile(latencies, 99)
        return {
            "signups": args.signups,
            "warmup": args.warmup,
            "clients": args.clients,
            "mode": f"open loop at {args.rate:g}/s" if args.rate else "closed loop",
            "database": benchlib.database_label(database_url),
            "redis": redis.description,
            "cpus": benchlib.cpu_count(),
            "server": f"gunicorn -w {args.gunicorn_workers} -k {args.worker_class} --threads {args.threads}",
            "rate_limit": f"SUBSCRIBE_RATE_LIMIT={RATE_LIMIT} (raised: all load comes from 127.0.0.1)",
            "wall_seconds": round(wall, 3),
            "requests_per_second": round(rps, 1),
            "latency_ms": {"p50": percentile(latencies, 50), "p90": percentile(latencies, 90),
                           "p99": p99, "max": round(max(latencies), 2) if latencies else None},
            "statuses": {str(k): v for k, v in sorted(out.statuses.items())},
            "errors": len(out.errors),
            "error_samples": out.errors[:5],
            "connections_opened": connects,
            "machine_cpu_busy_percent": busy,
            "cpu_by_process": cpu_top,
            "other_load": foreign,
            "check": {
                "accepted": len(accepted),
                "subscriber_rows": len(stored),
                "pending_rows": sum(1 for sid, status, _ in stored.values() if status == "pending"),
                "consent_records": sum(c for _, _, c in stored.values()),
                "queue": queue,
                "queue_length": length,
                "queued_confirmations": len(queued_ids),
                "duplicate_confirmations": duplicates,
                "missing_rows": len(missing_rows),
                "not_queued": len(not_queued),
                "lost": lost,
            },
            "targets": {"rps_met": rps >= TARGET_RPS,
                        "p99_met": p99 is not None and p99 < TARGET_P99_MS},
        }
    finally:
        benchlib.stop_process(server, timeout=20, group=True)
        redis.stop()


def _wait_healthy(port: int, server: subprocess.Popen, timeout: float = 30) -> None:
    async def probe() -> int:
        v = Visitor("127.0.0.1", port, 5)
        try:
            status, _ = await v.request("GET", "/healthz")
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
            raise BenchError("the app's /healthz did not answer 200")
        time.sleep(0.2)


def render_table(r: dict) -> str:
    ok = {True: "met", False: "NOT met"}
    lat = r["latency_ms"]
    c = r["check"]
    rows = [
        ("signups (measured)", f"{r['signups']:,} after {r['warmup']} warm-up"),
        ("load", f"{r['clients']} asyncio clients, {r['mode']}; GET / once per client, then POSTs"),
        ("server", f"{r['server']} on 127.0.0.1, {r['cpus']} CPUs"),
        ("database", r["database"]),
        ("rate limit", r["rate_limit"]),
        ("-", ""),
        ("wall seconds", f"{r['wall_seconds']:.2f}"),
        ("signups per second", f"{r['requests_per_second']:,.1f} (target >= {TARGET_RPS}: "
                               f"{ok[r['targets']['rps_met']]})"),
        ("latency p50 / p90", f"{lat['p50']} ms / {lat['p90']} ms"),
        ("latency p99", f"{lat['p99']} ms (target < {TARGET_P99_MS} ms: {ok[r['targets']['p99_met']]})"),
        ("latency max", f"{lat['max']} ms"),
        ("HTTP statuses", ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "-"),
        ("errors", f"{r['errors']}"),
        ("machine CPU", f"{r['machine_cpu_busy_percent']}% busy"),
        ("other load on the machine", benchlib.other_load_text(r["other_load"])),
        ("-", ""),
        ("accepted signups", f"{c['accepted']:,} (with warm-up)"),
        ("subscriber rows", f"{c['subscriber_rows']:,} ({c['pending_rows']:,} pending, "
                            f"{c['consent_records']:,} consent records)"),
        ("queued confirmations", f"{c['queued_confirmations']:,} (LLEN {c['queue']} = {c['queue_length']:,}; "
                                 f"{c['duplicate_confirmations']} duplicates)"),
        ("lost", f"{c['lost']} ({c['missing_rows']} without a row, {c['not_queued']} not queued)"),
    ]
    return benchlib.table(rows, f"Signup benchmark: {r['signups']:,} signups, {r['database']}")


def main(argv=None) -> int:
    args = parse_args(argv)
    benchlib.exit_cleanly_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="alerts-bench-signup-"))
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"bench/signup.py: {exc}", file=sys.stderr)
        log = workdir / "gunicorn.log"
        if log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            print(f"--- gunicorn.log (last lines)\n{tail}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(render_table(result))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    ok = result["check"]["lost"] == 0 and result["errors"] == 0 and result["check"]["accepted"] > 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
