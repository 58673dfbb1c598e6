"""Signup benchmark: concurrent signups against the app served by gunicorn on loopback.

    python -m bench.signup --signups 5000 [--clients 8] [--rate 500] [--json out.json]

Starts Redis (REDIS_URL, or a redis-server of its own), a fresh database (SQLite in a temporary
directory unless --database-url names one whose name contains 'bench') and gunicorn serving
`wsgi:app` on 127.0.0.1. Each simulated visitor is an asyncio client on raw streams (HTTP/1.1,
keep-alive when the server allows it): one GET / for its session cookie and CSRF token, then
POST /subscribe with a new address each time. A signup is recorded as a `signup_attempts` row
and its id pushed onto the signups' light queue, a Redis list that a `drain_signups` task
drains in batches (the same steps for every address, so the answer's timing says nothing about
it; the task decides and sends). No Celery worker runs, so every id pushed is still in Redis;
afterwards the bench checks that each accepted signup has its row and its id exactly once on
the list (and that the drainer was woken, once: its task in the Celery queue): nothing lost.

Closed loop by default (--clients visitors, each sending as soon as its last answer came);
--rate R sends at a fixed R signups per second instead and measures latency from each
signup's scheduled time, so queueing shows up in p99. All load comes from 127.0.0.1, so the
per-IP SUBSCRIBE_RATE_LIMIT is raised for the run (the output says to what).

In the same run, before the app, the floor (bench/floor.py: a bare Flask POST handler and a
form page with a hidden token) is served with the same gunicorn settings and driven by the same
client with the same requests. The table gives the app's figures as ratios to the floor's and
says whether the project's goal is reached: throughput at least 0.5x the floor's, p99 at most
3x the floor's, nothing lost.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from pathlib import Path

from bench import floor
from bench.lib import BenchError
from bench.lib.database import bench_database_url, fresh_schema
from bench.lib.harness import run_bench, table, web_app_env, web_bench_args, web_run_figures
from bench.lib.load import load_rows, warm_then_measure
from bench.lib.redis import BenchRedis
from bench.lib.web import Gunicorn, GunicornSettings, Visitor

RATE_LIMIT = "1000000/minute"
DONE_MARK = b"Check your inbox"


def parse_args(argv=None):
    p = web_bench_args("Signup benchmark (see the module docstring).", "signups", "signups", 5000)
    return p.parse_args(argv)


# -- checking the outcome ----------------------------------------------------------------------


def queued_confirmations(redis_url: str, queue: str) -> tuple[int, list[int], int]:
    """LLEN of the signups' light queue, the signup attempt ids on it (with any handle_signup
    messages in the Celery queue), and how many drain_signups wake-ups the Celery queue holds."""
    from alerts.redis_conn import client
    from alerts.subscribers.confirmations import SIGNUPS

    light = f"{queue}.{SIGNUPS}"  # (queueing.list_key, without an app context)
    conn = client(redis_url)
    try:
        ids = [int(raw) for raw in conn.lrange(light, 0, -1)]
        length = len(ids)
        wakes = 0
        for raw in conn.lrange(queue, 0, -1):
            message = json.loads(raw)
            task = message.get("headers", {}).get("task")
            if task == "alerts.tasks.drain_signups":
                wakes += 1
            if task != "alerts.tasks.handle_signup":
                continue
            body = message["body"]
            if message.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            args = json.loads(body)[0]
            ids.append(int(args[0]))
        return length, ids, wakes
    finally:
        conn.delete(queue, light, f"{light}:awake")
        conn.close()


def stored_subscribers(app, prefix: str) -> dict[str, tuple[int]]:
    """{email: (signup attempt id,)} of the recorded signups (decided later by handle_signup)."""
    import sqlalchemy as sa

    from alerts.extensions import db
    from alerts.models import SignupAttempt

    with app.app_context():
        rows = db.session.execute(
            sa.select(SignupAttempt.email, SignupAttempt.id).where(SignupAttempt.email.like(f"{prefix}%"))
        ).all()
        db.session.remove()
    return {email: (attempt_id,) for email, attempt_id in rows}


# -- the run ---------------------------------------------------------------------------------------


def run(args, workdir: Path) -> dict:
    if args.signups < 1 or args.clients < 1:
        raise BenchError("--signups and --clients must be at least 1")
    run_id = secrets.token_hex(4)
    queue = f"bench-signup-{run_id}"
    database_url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    server = None
    try:
        env = web_app_env(args, database_url, redis.url, queue, SUBSCRIBE_RATE_LIMIT=RATE_LIMIT)

        from alerts import create_app
        from alerts.actions import seed_actions
        from alerts.extensions import db

        app = create_app()
        fresh_schema(app)
        with app.app_context():
            seed_actions()
            db.session.commit()
            db.session.remove()

        server_settings = GunicornSettings(args.gunicorn_workers, args.worker_class, args.threads)
        floor_n = args.floor_requests or args.signups
        print(f"[bench] floor: bare Flask under {server_settings.label}, {args.warmup} warm-up, "
              f"{floor_n:,} measured", file=sys.stderr)
        floor_figures = floor.measure(server_settings, workdir, env, requests=floor_n, warmup=args.warmup,
                                      clients=args.clients, rate=args.rate, timeout=args.timeout,
                                      path="/subscribe")

        server = Gunicorn("wsgi:app", server_settings, env, workdir / "gunicorn.log")
        prefix = f"signup-{run_id}-"
        warm = [f"{prefix}w{i:06d}@example.net" for i in range(args.warmup)]
        emails = [f"{prefix}{i:07d}@example.net" for i in range(args.signups)]

        async def subscribe(v: Visitor, email: str) -> int:
            return await v.post_form("/subscribe", {"email": email, "website": ""}, DONE_MARK)

        print(f"[bench] {args.warmup} warm-up signups, then {args.signups:,} measured "
              f"({args.clients} clients{f', {args.rate:g}/s' if args.rate else ''})", file=sys.stderr)
        # 303: redirected to the answer page (redirect after POST)
        load = warm_then_measure(server.port, args.clients, args.timeout, warm, emails, subscribe, args.rate,
                                 ok=(200, 303), server_pid=server.proc.pid)
        server.stop()
        server = None

        # Nothing lost: every accepted signup recorded, with its handle_signup task queued once.
        accepted = load.accepted
        stored = stored_subscribers(app, prefix)
        length, queued_ids, wakes = queued_confirmations(redis.url, queue)
        missing_rows = [e for e in accepted if e not in stored]
        wanted_ids = {stored[e][0] for e in accepted if e in stored}
        queued_set = set(queued_ids)
        not_queued = sorted(wanted_ids - queued_set)
        duplicates = len(queued_ids) - len(queued_set)
        lost = len(missing_rows) + len(not_queued)

        return {
            "signups": args.signups,
            **web_run_figures(args, database_url, redis, server_settings),
            "rate_limit": f"SUBSCRIBE_RATE_LIMIT={RATE_LIMIT} (raised: all load comes from 127.0.0.1)",
            **load.figures("signup"),
            "check": {
                "accepted": len(accepted),
                "signup_rows": len(stored),
                "queue": f"{queue}.signups",
                "queue_length": length,
                "drainer_wakes": wakes,
                "queued_confirmations": len(queued_ids),
                "duplicate_confirmations": duplicates,
                "missing_rows": len(missing_rows),
                "not_queued": len(not_queued),
                "lost": lost,
            },
            "floor": floor_figures,
            "ratio_to_floor": floor.compare_load(load, floor_figures, lost),
        }
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def render_table(r: dict) -> str:
    c = r["check"]
    rows = [
        ("signups (measured)", f"{r['signups']:,} after {r['warmup']} warm-up"),
        ("load", f"{r['clients']} asyncio clients, {r['mode']}; GET / once per client, then POSTs"),
        ("server", f"{r['server']} on 127.0.0.1, {r['cpus']} CPUs"),
        ("database", r["database"]),
        ("rate limit", r["rate_limit"]),
        ("-", ""),
        ("wall seconds", f"{r['wall_seconds']:.2f}"),
        *load_rows(r, "signups", "signup"),
        ("-", ""),
        ("accepted signups", f"{c['accepted']:,} (with warm-up)"),
        ("recorded signups", f"{c['signup_rows']:,} signup_attempts rows"),
        ("queued signups", f"{c['queued_confirmations']:,} attempt ids (LLEN {c['queue']} = "
                           f"{c['queue_length']:,}; {c['duplicate_confirmations']} duplicates; the drainer "
                           f"woken {c.get('drainer_wakes', 0)}x, no worker runs)"),
        ("lost", f"{c['lost']} ({c['missing_rows']} without a row, {c['not_queued']} not queued)"),
        ("-", ""),
        *floor.table_rows(r["floor"], r["ratio_to_floor"], unit="signups"),
    ]
    return table(rows, f"Signup benchmark: {r['signups']:,} signups, {r['database']}")


def main(argv=None) -> int:
    args = parse_args(argv)

    def ok(result) -> bool:
        return (result["check"]["lost"] == 0 and result["errors"] == 0 and result["check"]["accepted"] > 0
                and result["floor"]["errors"] == 0)

    return run_bench("signup", args, run, render_table,
                              logs=("floor-gunicorn.log", "gunicorn.log"), ok=ok)


if __name__ == "__main__":
    sys.exit(main())
