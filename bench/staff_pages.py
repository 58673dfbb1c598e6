"""Staff pages at list size: the dashboard, the subscriber list and an alert page, beside a bare page.

Seeds N subscribers (PostgreSQL: one INSERT … SELECT generate_series, so a million takes
seconds; signups spread over three years, some pending or unsubscribed, with their consent
records and signatures, so the dashboard's series read real rows), a suppression per thousand
and an alert, then times GET requests in one
process through `app.test_client()` with a logged-in staff session: each page `--rounds`
times, alternating with a bare Flask page served the same way (the floor). Prints each page's
median and p90 in milliseconds and its ratio to the floor; the goal is under 300 ms. What a page
fetches after it is shown (the dashboard's charts, a draft's recipient count) is timed on rows of
its own.

    .venv/bin/python -m bench.staff_pages --subscribers 1000000 \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/alerts_bench
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench.lib import BenchError
from bench.lib.database import bench_database_url, database_label, fresh_schema
from bench.lib.harness import run_bench, table
from bench.lib.redis import BenchRedis

GOAL_MS = 300


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


def seed(app, n: int) -> int:
    import sqlalchemy as sa

    from alerts.actions import seed_actions
    from alerts.blasts.compose import save_alert
    from alerts.extensions import db
    from alerts.models import Subscriber, Suppression, email_hash, utcnow

    with app.app_context():
        seed_actions()
        db.session.flush()
        if db.engine.dialect.name == "postgresql":
            # A list as it stands after three years: signups spread over them (growing), one in 25
            # still pending, one in 20 gone; each with its signup, confirmation and unsubscribe
            # records, and a signature from one in five (a uniform seed made the charts look cheap).
            db.session.execute(sa.text(
                "INSERT INTO subscribers (email, email_key, token_key, legacy_links, status, created_at, "
                "confirmed_at, unsubscribed_at, source) "
                "SELECT e, e, md5('bench' || i), false, "
                " CASE WHEN i % 25 = 3 THEN 'pending' WHEN i % 20 = 7 THEN 'unsubscribed' "
                "  ELSE 'confirmed' END, "
                " c, CASE WHEN i % 25 = 3 THEN NULL ELSE c + interval '1 minute' * (1 + i % 90) END, "
                " CASE WHEN i % 20 = 7 AND i % 25 <> 3 THEN least(now(), c + interval '91 minutes' "
                "  + (now() - c) * ((i::bigint * 7919) % 1000) / 1000.0) END, "
                " (ARRAY['web-form', 'action-center', 'import', 'share', 'petition-page'])[1 + i % 5] FROM "
                "(SELECT i, 'reader' || lpad(i::text, 7, '0') || '@example.net' AS e, "
                "  now() - interval '1095 days' * (1 - sqrt(i::float / :n))"
                "  - interval '1 second' * (i % 86400) AS c"
                " FROM generate_series(0, :n - 1) AS i) AS g"), {"n": n})
            db.session.execute(sa.text(
                "INSERT INTO consent_records (subscriber_id, event, at, source, consent_text_version) "
                "SELECT id, 'signup', created_at, source, 'v1' FROM subscribers "
                "UNION ALL SELECT id, 'confirm', confirmed_at, source, 'v1' FROM subscribers "
                " WHERE confirmed_at IS NOT NULL "
                "UNION ALL SELECT id, 'unsubscribe:link', unsubscribed_at, source, 'v1' FROM subscribers "
                " WHERE unsubscribed_at IS NOT NULL"))
            db.session.execute(sa.text(
                "INSERT INTO signatures (action_id, subscriber_id, email, email_key, name, source, "
                "created_at, confirmed_at) "
                "SELECT a.id, s.id, s.email, s.email_key, '', 'action-center', "
                " s.created_at + interval '1 hour', s.created_at + interval '1 hour' "
                "FROM subscribers s JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k, "
                " count(*) OVER () AS m FROM actions) a ON a.k = s.id % a.m "
                "WHERE s.id % 5 = 0"))
        else:
            now = utcnow()
            for start in range(0, n, 10_000):
                db.session.execute(sa.insert(Subscriber), [
                    {"email": f"reader{i:07d}@example.net", "status": "confirmed", "created_at": now,
                     "confirmed_at": now, "source": "bench"} for i in range(start, min(n, start + 10_000))])
        db.session.execute(sa.insert(Suppression), [
            {"email_hash": email_hash(f"reader{i:07d}@example.net"), "email": f"reader{i:07d}@example.net",
             "reason": "hard-bounce"} for i in range(0, n, 1000)])
        alert = save_alert(None, subject="Bench alert", intro_md="Hello", preheader="", action_slugs=None,
                           created_by="bench")
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # What autovacuum has long done on a list that grew over years: statistics, and the
            # visibility map that lets a count read an index alone.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
        alert_id = alert.id
        db.session.remove()
        return alert_id


def timed(client, path: str) -> float:
    t0 = time.perf_counter()
    res = client.get(path)
    ms = (time.perf_counter() - t0) * 1000
    if res.status_code != 200:
        raise BenchError(f"GET {path} answered {res.status_code}")
    return ms


def run(args, workdir: Path) -> dict:
    database_url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    try:
        import os

        # The pages are measured, not the login: the bench's owner account needs no second factor.
        os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis.url, SECRET_KEY="bench-staff-pages",
                          STAFF_REQUIRE_2FA="none")
        from flask import Flask

        from alerts import create_app
        from alerts.accounts import create_staff
        from alerts.extensions import db
        from alerts.web.staff import auth

        app = create_app()
        fresh_schema(app)
        t0 = time.perf_counter()
        alert_id = seed(app, args.subscribers)
        seeded = time.perf_counter() - t0
        with app.app_context():
            user = create_staff("bench@example.org", "a long bench password")
            db.session.commit()
            user_id, epoch = user.id, user.session_epoch
        client = app.test_client()
        with client.session_transaction() as s:
            s[auth.SESSION_USER] = user_id
            s[auth.SESSION_LOGIN_AT] = int(time.time())
            s[auth.SESSION_EPOCH] = epoch
            s.permanent = True
        floor_app = Flask("floor")
        floor_app.add_url_rule("/", "bare", lambda: "<!doctype html><title>bare</title><p>ok</p>")
        floor = floor_app.test_client()
        pages = {
            "dashboard": "/staff/",
            "subscriber list": "/staff/subscribers",
            "alert page (draft)": f"/staff/alerts/{alert_id}",
        }
        # What the pages fetch once they are shown (timed too, but not held to the goal: the
        # page answers without them).
        after = {
            "  dashboard's charts (fetched after the page)": "/staff/charts.part",
            "  draft's recipient count (fetched after the page)": f"/staff/alerts/{alert_id}/recipients.json",
        }
        pages.update({name: path for name, path in after.items() if client.get(path).status_code != 404})
        for path in pages.values():  # warm: compiled templates, pooled connections
            timed(client, path)
        timed(floor, "/")
        floor_ms: list[float] = []
        page_ms: dict[str, list[float]] = {name: [] for name in pages}
        for _ in range(args.rounds):
            for name, path in pages.items():
                floor_ms.append(timed(floor, "/"))
                page_ms[name].append(timed(client, path))
        floor_median = statistics.median(floor_ms)
        out = {}
        for name, values in page_ms.items():
            values.sort()
            median = statistics.median(values)
            p90 = values[int(0.9 * (len(values) - 1))]
            out[name] = {"median_ms": round(median, 1), "p90_ms": round(p90, 1),
                         "ratio_to_floor": round(median / floor_median, 1), "goal_met": median < GOAL_MS,
                         "after_the_page": name in after}
        return {"subscribers": args.subscribers, "database": database_label(database_url),
                "seed_seconds": round(seeded, 1), "floor_median_ms": round(floor_median, 3),
                "rounds": args.rounds, "pages": out,
                "complete": all(p["goal_met"] for p in out.values() if not p["after_the_page"])}
    finally:
        redis.stop()


def render(r: dict) -> str:
    rows = [("subscribers", f"{r['subscribers']:,} ({r['database']}; seeded in {r['seed_seconds']} s)"),
            ("floor: a bare Flask page", f"{r['floor_median_ms']} ms median, same process, same client")]
    for name, p in r["pages"].items():
        goal = "" if p.get("after_the_page") else \
            f" (goal < {GOAL_MS} ms: {'met' if p['goal_met'] else 'NOT met'})"
        rows.append((name, f"{p['median_ms']} ms median, p90 {p['p90_ms']} ms, {p['ratio_to_floor']}x the "
                           f"floor{goal}"))
    return table(rows, f"Staff pages at {r['subscribers']:,} subscribers, {r['rounds']} rounds")


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench("staff_pages", args, run, render, keep=args.keep,
                              ok=lambda result: result["complete"])


if __name__ == "__main__":
    sys.exit(main())
