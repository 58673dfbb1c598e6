"""Where a signup's time goes: POST /subscribe in one process, through Flask's test client.

    python -m bench.profile_signup --signups 2000 [--database-url URL] [--cprofile out.prof]
    python -m bench.profile_signup --signups 1500 --quick --config RATELIMIT_HEADERS_ENABLED=false

Builds the app like bench/signup.py (fresh database, Redis, its own Celery queue, the rate limit
raised), fetches the form once, then posts N signups through `app.test_client()`: the whole WSGI
app with no HTTP server. The same loop runs against the bare floor app (bench/floor.py), so the
difference is the app's own work: floor and app loops alternate in --rounds, and the medians
(CPU per request of each, and their ratio) are the headline, steadier on a shared machine than
one long loop. --config passes Flask settings to create_app, to compare a setting.

Then (unless --quick) named steps of the request are timed by wrapping them (wall and this
thread's CPU): session load/save, the before/after-request hooks, CSRF check, rate limiter
(and its Redis calls), form and email validation, the database statements, the commit, the
Celery publish, the template; Redis commands and SQL statements are counted. A last pass runs
the loop under cProfile (which inflates call-heavy code such as kombu's about 2x) and lists
the top functions. For the effect of one change, use bench/ab_signup.py (paired rounds).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import re
import secrets
import sys
import time
from collections import defaultdict
from pathlib import Path

from bench import floor
from bench.lib import BenchError
from bench.lib.database import bench_database_url, database_label, fresh_schema
from bench.lib.harness import apply_settings, run_bench, table
from bench.lib.redis import BenchRedis

TOKEN_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Per-signup profile of POST /subscribe (one process).")
    p.add_argument("--signups", type=int, default=2000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--cprofile", default=None, help="write the profile here (pstats)")
    p.add_argument("--config", action="append", default=[], metavar="NAME=JSON",
                   help="a Flask config value for create_app, e.g. RATELIMIT_HEADERS_ENABLED=false or "
                        "'CELERY={\"task_send_sent_event\": false}'")
    p.add_argument("--rounds", type=int, default=5,
                   help="alternating floor/app loops (N/rounds each), untimed steps: the medians are "
                        "the headline figures, steadier than one loop on a shared machine")
    p.add_argument("--quick", action="store_true", help="only the rounds: no step timers, no cProfile")
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


class Timers:
    """Wall and CPU seconds per named step; nested steps are counted in each (see `outer`)."""

    def __init__(self):
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)

    def timed(self, fn, name: str):
        @functools.wraps(fn)
        def timed(*a, **kw):
            w0, c0 = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                self.wall[name] += time.perf_counter() - w0
                self.cpu[name] += time.thread_time() - c0
                self.calls[name] += 1

        return timed

    def wrap(self, owner, attr: str, name: str) -> None:
        setattr(owner, attr, self.timed(getattr(owner, attr), name))

    def wrap_hooks(self, app) -> None:
        """Every before/after-request hook of the app (they are bound when registered)."""
        for kind, hooks in (("before_request", app.before_request_funcs),
                            ("after_request", app.after_request_funcs)):
            for blueprint, funcs in hooks.items():
                if blueprint is None:
                    funcs[:] = [self.timed(f, f"{kind}: {_hook_name(f)}") for f in funcs]


def _hook_name(fn) -> str:
    fn = getattr(fn, "func", fn)
    return getattr(fn, "__qualname__", repr(fn)).replace("<locals>.", "")


def loop(client, emails: list[str], token: str, path: str, mark: bytes) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.thread_time()
    for email in emails:
        response = client.post(path, data={"csrf_token": token, "email": email, "website": ""})
        # 303: the app redirects after the POST (the answer page is its own request); 200: the floor
        if response.status_code == 303:
            continue
        if response.status_code != 200 or mark not in response.data:
            raise BenchError(f"POST {path} answered {response.status_code}")
    return time.perf_counter() - w0, time.thread_time() - c0


def form_token(client) -> str:
    response = client.get("/")
    match = TOKEN_RE.search(response.data)
    if response.status_code != 200 or not match:
        raise BenchError("GET / gave no CSRF token")
    return match.group(1).decode()


def make_app(args, database_url: str, redis_url: str, queue: str):
    """The app as bench/signup.py configures it, on a fresh schema with the actions seeded."""
    apply_settings({
        "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(32),
        "CELERY_TASK_QUEUE": queue, "SUBSCRIBE_RATE_LIMIT": "1000000/minute",
        "BASE_URL": "https://alerts.example.org", "SMTP_URL": "smtp://127.0.0.1:9",
    }, args.settings)
    from alerts import create_app
    from alerts.actions import seed_actions
    from alerts.extensions import db

    overrides = {}
    for item in args.config:
        name, _, raw = item.partition("=")
        overrides[name] = json.loads(raw)
    app = create_app(overrides or None)
    fresh_schema(app)
    with app.app_context():
        seed_actions()
        db.session.commit()
        db.session.remove()
    return app


def drop_queue(redis_url: str, queue: str) -> None:
    try:
        from alerts.redis_conn import client as redis_client

        conn = redis_client(redis_url)
        conn.delete(queue)
        conn.close()
    except Exception:  # noqa: BLE001 (clean-up only)
        pass


def run(args, workdir: Path) -> dict:
    database_url = bench_database_url(args, workdir, "profile.db")
    redis = BenchRedis.start(workdir, args.redis_url)
    queue = f"bench-profile-signup-{secrets.token_hex(4)}"
    try:
        app = make_app(args, database_url, redis.url, queue)

        import celery
        import flask
        import flask_wtf.csrf
        import kombu.messaging
        from flask_limiter import Limiter

        from alerts.extensions import db, limiter
        from alerts.subscribers import subscriptions
        from alerts.web import public

        n = args.signups
        run_id = secrets.token_hex(3)

        def emails(tag):
            return [f"p{run_id}{tag}{i:07d}@example.net" for i in range(n)]

        # Warm both, then alternate floor and app loops: CPU and wall per request, medians.
        floor_client = floor.app.test_client()
        ftoken = form_token(floor_client)
        loop(floor_client, emails("fw")[:200], ftoken, "/subscribe", floor.MARK)
        client = app.test_client()
        token = form_token(client)
        loop(client, emails("w")[:200], token, "/subscribe", b"Check your inbox")
        size = max(1, n // args.rounds)
        rounds = []
        for r in range(args.rounds):
            fw, fc = loop(floor_client, emails(f"f{r}x")[:size], ftoken, "/subscribe", floor.MARK)
            aw, ac = loop(client, emails(f"r{r}x")[:size], token, "/subscribe", b"Check your inbox")
            rounds.append({"floor_wall": fw / size, "floor_cpu": fc / size, "app_wall": aw / size,
                           "app_cpu": ac / size, "ratio_cpu": ac / fc if fc else None})

        def median(key):
            values = sorted(x[key] for x in rounds)
            return values[len(values) // 2]

        headline = {"rounds": args.rounds, "per_round": size,
                    "app_cpu_ms": round(1000 * median("app_cpu"), 3),
                    "app_wall_ms": round(1000 * median("app_wall"), 3),
                    "floor_cpu_ms": round(1000 * median("floor_cpu"), 3),
                    "floor_wall_ms": round(1000 * median("floor_wall"), 3),
                    "app_over_floor_cpu": round(median("ratio_cpu"), 2),
                    "app_over_floor_cpu_all": [round(x["ratio_cpu"], 2) for x in rounds]}
        if args.quick:
            return {"signups": n, "database": database_label(database_url), "config": args.config,
                    "headline": headline}

        # Timed steps.
        timers = Timers()
        si = app.session_interface
        timers.wrap(type(si), "open_session", "session: open (cookie -> dict)")
        timers.wrap(type(si), "save_session", "session: save (dict -> signed cookie)")
        timers.wrap(flask_wtf.csrf.CSRFProtect, "protect", "CSRF check (before_request)")
        timers.wrap_hooks(app)
        timers.wrap(Limiter, "_check_request_limit", "rate limiter: all checks (hook + @limit)")
        storage = type(limiter.storage)
        for attr in ("incr", "get", "get_expiry", "clear", "check"):
            if hasattr(storage, attr):
                timers.wrap(storage, attr, f"rate limiter: Redis {attr}")
        timers.wrap(public.SubscribeForm, "validate_on_submit", "form: WTForms validate_on_submit")
        timers.wrap(subscriptions, "normalize_email", "email-validator (normalize_email)")
        timers.wrap(subscriptions, "is_suppressed", "DB: suppression lookup")
        timers.wrap(subscriptions, "_insert_new", "DB: INSERT subscriber + consent")
        timers.wrap(db.session, "commit", "DB: commit")
        timers.wrap(celery.Celery, "send_task", "Celery: send_task (whole publish)")
        timers.wrap(kombu.messaging.Producer, "publish", "Celery: kombu Producer.publish")
        timers.wrap(public, "render_template", "template: subscribe_done.html")
        timers.wrap(flask.Flask, "do_teardown_appcontext", "teardown (session remove)")
        timers.wrap(flask.Flask, "full_dispatch_request", "Flask full_dispatch_request")
        redis_commands: dict[str, int] = defaultdict(int)
        sql_statements: list[str] = []

        def count_redis(fn):
            @functools.wraps(fn)
            def counted(self, *a, **kw):
                redis_commands[str(a[0])] += 1
                return fn(self, *a, **kw)
            return counted

        import redis as redis_lib
        import sqlalchemy as sa

        redis_lib.Redis.execute_command = count_redis(redis_lib.Redis.execute_command)
        with app.app_context():
            engine = db.engine

        def count_sql(conn, cursor, statement, *_):
            sql_statements.append(statement.split(None, 1)[0].upper())

        sa.event.listen(engine, "before_cursor_execute", count_sql)
        app_wall, app_cpu = loop(client, emails("a"), token, "/subscribe", b"Check your inbox")
        sa.event.remove(engine, "before_cursor_execute", count_sql)
        snapshot = ({**timers.wall}, {**timers.cpu}, {**timers.calls})
        redis_per = {k: round(v / n, 2) for k, v in sorted(redis_commands.items())}
        sql_per = {k: round(sql_statements.count(k) / n, 2) for k in sorted(set(sql_statements))}
        for d in (timers.wall, timers.cpu, timers.calls):
            d.clear()

        # cProfile pass (slower; its own addresses).
        prof = cProfile.Profile()
        prof.enable()
        prof_wall, _ = loop(client, emails("c"), token, "/subscribe", b"Check your inbox")
        prof.disable()
        if args.cprofile:
            prof.dump_stats(args.cprofile)
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf)
        stats.sort_stats("cumulative").print_stats(args.top)
        tottime = io.StringIO()
        pstats.Stats(prof, stream=tottime).sort_stats("tottime").print_stats(args.top)
        with app.app_context():
            db.session.remove()

        per = 1000 / n
        wall, cpu, calls = snapshot
        steps = {name: {"wall_ms": round(wall[name] * per, 3), "cpu_ms": round(cpu[name] * per, 3),
                        "calls_per_signup": round(calls[name] / n, 2)}
                 for name in wall}
        return {
            "signups": n,
            "database": database_label(database_url),
            "config": args.config,
            "headline": headline,
            "app_ms_per_signup": {"wall": round(app_wall * per, 3), "cpu": round(app_cpu * per, 3)},
            "cprofile_wall_ms_per_signup": round(prof_wall * per, 3),
            "steps": steps,
            "redis_commands_per_signup": redis_per,
            "sql_statements_per_signup": sql_per,
            "cprofile_cumulative": buf.getvalue(),
            "cprofile_tottime": tottime.getvalue(),
        }
    finally:
        drop_queue(redis.url, queue)
        redis.stop()


def _counts(d: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in d.items()) or "-"


def render(r: dict) -> str:
    h = r["headline"]
    rows = [
        ("signups", f"{r['signups']:,} through app.test_client(), {r['database']}"),
        ("config overrides", " ".join(r["config"]) or "-"),
        ("rounds", f"{h['rounds']} x (floor {h['per_round']:,}, app {h['per_round']:,}), medians:"),
        ("app, whole request", f"{h['app_cpu_ms']:.3f} ms CPU, {h['app_wall_ms']:.3f} ms wall"),
        ("floor, whole request", f"{h['floor_cpu_ms']:.3f} ms CPU, {h['floor_wall_ms']:.3f} ms wall"),
        ("app / floor (CPU)", f"{h['app_over_floor_cpu']}x (rounds: {h['app_over_floor_cpu_all']})"),
    ]
    if "steps" not in r:
        return table(rows, "POST /subscribe in one process")
    rows += [
        ("-", ""),
        ("steps pass: whole request", f"{r['app_ms_per_signup']['cpu']:.3f} ms CPU, "
                                      f"{r['app_ms_per_signup']['wall']:.3f} ms wall (with step timers)"),
        ("Redis commands per signup", _counts(r["redis_commands_per_signup"]) + " (pipelines not counted)"),
        ("SQL statements per signup", _counts(r["sql_statements_per_signup"])),
        ("-", ""),
    ]
    for name, s in sorted(r["steps"].items(), key=lambda kv: -kv[1]["wall_ms"]):
        rows.append((name, f"{s['wall_ms']:.3f} ms wall, {s['cpu_ms']:.3f} ms CPU "
                           f"({s['calls_per_signup']}/signup)"))
    return table(rows, "POST /subscribe, milliseconds per signup (steps overlap: Flask "
                                "full_dispatch_request contains the view's steps)")


def main(argv=None) -> int:
    def render_all(result) -> str:
        extra = [result[k] for k in ("cprofile_cumulative", "cprofile_tottime") if k in result]
        return "\n".join([render(result), *extra])

    return run_bench("profile_signup", parse_args(argv), run, render_all)


if __name__ == "__main__":
    sys.exit(main())
