"""A/B of one change to POST /subscribe, inside one process, on a shared machine.

    python -m bench.ab_signup --variant no-sent-event [--variant ...] [--rounds 20] [--signups 4000]

The app is built like bench/profile_signup.py (fresh SQLite, Redis, rate limit raised) and
driven through `app.test_client()`. Each variant is a change applied at run time (a setting
flipped, a function swapped) and undone again; rounds alternate A (as the code is) and B (all
--variant changes applied) in ABBA order, each loop N/(2*rounds) signups, and the table gives
the median CPU per signup of A and of B and the median of the per-round differences A-B with
its interquartile range. Other load on the machine slows A and B alike within a round, so the
paired difference is steadier than comparing two runs.

Variants ending in "(diagnostic)" remove something the app needs (CSRF, the rate limiter, the
Celery publish): they measure what that part costs, they are not proposals.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

from bench.lib.database import bench_database_url
from bench.lib.harness import run_bench, table
from bench.lib.redis import BenchRedis
from bench.profile_signup import drop_queue, form_token, loop, make_app

MARK = b"Check your inbox"


def _set(obj, attr, value):
    old = getattr(obj, attr)
    setattr(obj, attr, value)
    return lambda: setattr(obj, attr, old)


def no_sent_event(ctx):
    """task_send_sent_event off: no 'task-sent' event published beside each task."""
    return _set(ctx["celery"].conf, "task_send_sent_event", False)


def no_ratelimit_headers(ctx):
    """RATELIMIT_HEADERS_ENABLED off: no second window read (GET + TTL) for X-RateLimit-*."""
    return _set(ctx["limiter"], "_headers_enabled", False)


def cached_done_page(ctx):
    """subscribe_done.html rendered once per process (it is the same page for everyone)."""
    from alerts.web import public

    original = public.render_template
    cache: dict[str, str] = {}

    def render(name, **kw):
        if name == "subscribe_done.html" and not kw:
            if name not in cache:
                cache[name] = original(name)
            return cache[name]
        return original(name, **kw)

    return _set(public, "render_template", render)


def suppression_in_insert(ctx):
    """A new address's suppression check folded into its INSERT (INSERT ... SELECT ... WHERE
    NOT EXISTS): two statements for a new signup instead of three."""
    import secrets as _secrets

    import sqlalchemy as sa

    from alerts.extensions import db, upsert
    from alerts.models import ConsentRecord, Subscriber, SubscriberStatus, Suppression, email_hash, utcnow
    from alerts.subscribers import subscriptions as subs

    original = subs.request_subscription

    def insert_new(email, req):
        now = utcnow()
        not_suppressed = ~sa.exists().where(Suppression.email_hash == email_hash(email))
        row = sa.select(sa.literal(email), sa.literal(str(SubscriberStatus.PENDING)),
                        sa.literal(_secrets.token_hex(16)), sa.literal(now, subs.Subscriber.created_at.type),
                        sa.literal(now, subs.Subscriber.last_confirmation_at.type)).where(not_suppressed)
        stmt = (upsert(Subscriber)
                .from_select(["email", "status", "confirm_nonce", "created_at", "last_confirmation_at"], row)
                .on_conflict_do_nothing(index_elements=["email"])
                .returning(Subscriber.id))
        subscriber_id = db.session.scalar(stmt)
        if subscriber_id is not None:
            db.session.execute(sa.insert(ConsentRecord).values(subscriber_id=subscriber_id,
                                                              **subs._consent("signup", req)))
        return subscriber_id

    def request_subscription(email, req):
        new_id = insert_new(email, req)
        if new_id is not None:
            return new_id
        return original(email, req)  # known or suppressed: the usual path (checks suppression)

    return _set(subs, "request_subscription", request_subscription)


def no_publish(ctx):
    """(diagnostic) the enqueue after the commit (the light queue's push; any Celery publish)
    replaced by nothing."""
    from alerts import queueing

    undo_push = _set(queueing, "push", lambda name, items, *, wake: True)
    undo_send = _set(queueing, "_send", lambda name, args: None)

    def undo():
        undo_push()
        undo_send()

    return undo


def no_limiter(ctx):
    """(diagnostic) Flask-Limiter disabled (no Redis round trips for it)."""
    return _set(ctx["limiter"], "enabled", False)


def no_csrf(ctx):
    """(diagnostic) CSRF off (WTF_CSRF_ENABLED: neither the hook nor the form checks it)."""
    return _config(ctx["app"], "WTF_CSRF_ENABLED", False)


def _config(app, name, value):
    old = app.config.get(name)
    app.config[name] = value
    return lambda: app.config.__setitem__(name, old)


VARIANTS = {
    "no-sent-event": no_sent_event,
    "no-ratelimit-headers": no_ratelimit_headers,
    "cached-done-page": cached_done_page,
    "suppression-in-insert": suppression_in_insert,
    "no-publish": no_publish,
    "no-limiter": no_limiter,
    "no-csrf": no_csrf,
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="In-process A/B of POST /subscribe (see the docstring).")
    p.add_argument("--variant", action="append", required=True, choices=sorted(VARIANTS))
    p.add_argument("--signups", type=int, default=4000, help="signups in all (A and B together)")
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--config", action="append", default=[], metavar="NAME=JSON")
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


def quartiles(values: list[float]) -> tuple[float, float, float]:
    v = sorted(values)
    return v[len(v) // 4], v[len(v) // 2], v[(3 * len(v)) // 4]


def run(args, workdir: Path) -> dict:
    database_url = bench_database_url(args, workdir, "ab.db")
    redis = BenchRedis.start(workdir, args.redis_url)
    queue = f"bench-ab-signup-{secrets.token_hex(4)}"
    try:
        app = make_app(args, database_url, redis.url, queue)
        from alerts.extensions import db, limiter

        ctx = {"app": app, "celery": app.extensions["celery"], "limiter": limiter}
        client = app.test_client()
        token = form_token(client)
        tag = secrets.token_hex(3)
        size = max(1, args.signups // (2 * args.rounds))
        counter = iter(range(10**9))

        def batch(k):
            return [f"ab{tag}-{next(counter):08d}@example.net" for _ in range(k)]

        def run_b(emails):
            undo = [VARIANTS[v](ctx) for v in args.variant]
            try:
                return loop(client, emails, token, "/subscribe", MARK)
            finally:
                for u in reversed(undo):
                    u()

        loop(client, batch(200), token, "/subscribe", MARK)  # warm A
        run_b(batch(200))  # warm B
        a_cpu, b_cpu, diffs, a_wall, b_wall = [], [], [], [], []
        for r in range(args.rounds):
            order = ("A", "B") if r % 2 == 0 else ("B", "A")
            got = {}
            for which in order:
                emails = batch(size)
                got[which] = (loop(client, emails, token, "/subscribe", MARK) if which == "A"
                              else run_b(emails))
            a_cpu.append(1000 * got["A"][1] / size)
            b_cpu.append(1000 * got["B"][1] / size)
            a_wall.append(1000 * got["A"][0] / size)
            b_wall.append(1000 * got["B"][0] / size)
            diffs.append(a_cpu[-1] - b_cpu[-1])
        with app.app_context():
            db.session.remove()
        q = quartiles(diffs)
        return {
            "variants": args.variant,
            "what": {v: VARIANTS[v].__doc__.strip() for v in args.variant},
            "rounds": args.rounds,
            "per_loop": size,
            "a_cpu_ms_median": round(quartiles(a_cpu)[1], 3),
            "b_cpu_ms_median": round(quartiles(b_cpu)[1], 3),
            "a_wall_ms_median": round(quartiles(a_wall)[1], 3),
            "b_wall_ms_median": round(quartiles(b_wall)[1], 3),
            "saved_cpu_ms_median": round(q[1], 3),
            "saved_cpu_ms_iqr": [round(q[0], 3), round(q[2], 3)],
            "b_faster_rounds": sum(1 for d in diffs if d > 0),
        }
    finally:
        drop_queue(redis.url, queue)
        redis.stop()


def render(r: dict) -> str:
    rows = [(f"B: {v}", r["what"][v].split("\n")[0]) for v in r["variants"]]
    rows += [
        ("rounds", f"{r['rounds']} x (A {r['per_loop']}, B {r['per_loop']} signups), ABBA order"),
        ("-", ""),
        ("A (as the code is)",
         f"{r['a_cpu_ms_median']:.3f} ms CPU, {r['a_wall_ms_median']:.3f} ms wall per signup"),
        ("B", f"{r['b_cpu_ms_median']:.3f} ms CPU, {r['b_wall_ms_median']:.3f} ms wall per signup"),
        ("A - B, paired by round", f"{r['saved_cpu_ms_median']:+.3f} ms CPU per signup (IQR "
                                   f"{r['saved_cpu_ms_iqr'][0]:+.3f} .. {r['saved_cpu_ms_iqr'][1]:+.3f}); "
                                   f"B cheaper in {r['b_faster_rounds']} of {r['rounds']} rounds"),
    ]
    return table(rows, "POST /subscribe, in-process A/B")


def main(argv=None) -> int:
    return run_bench("ab_signup", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
