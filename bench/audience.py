"""Audience benchmark: how long the live count and the blast's INSERT … SELECT take with rules.

    python -m bench.audience [--subscribers 100000] [--database-url URL] [--json out.json]

Fills a fresh database (a new SQLite file, or a PostgreSQL database whose name contains
"bench") with N confirmed subscribers, signatures on two actions (30% by subscriber, 5% by
address only), topic choices (10%) and clicks (20%), then times each audience's count (the
compose page's live figure) and the blast's one INSERT … SELECT of its delivery rows. The
floor, measured in the same run, is the plain count of confirmed subscribers; each figure is
also printed as a ratio to it.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from bench.lib import BenchError
from bench.lib.database import bench_database_url, database_label, fresh_schema
from bench.lib.harness import run_bench
from bench.lib.redis import BenchRedis

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"
AUDIENCES = {
    "everyone, acted too (base rules only)": {"include_acted": True},
    "everyone, skip-acted (2 actions)": {},
    "except signers of Rikers": {"except_signers_of": [RIKERS]},
    "only signers of Rikers": {"only_signers_of": [RIKERS]},
    "topic detention": {"topics": ["detention"]},
    "engaged in 30 days": {"engaged_days": 30},
    "not signed Rikers, topic, source": {"except_signers_of": [RIKERS], "topics": ["detention"],
                                         "source": "web"},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Audience benchmark (see the module docstring).")
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--repeat", type=int, default=5, help="runs per figure; the median is shown")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None,
                   help="the app's Redis (default: a redis-server of the bench's own)")
    p.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    return p.parse_args(argv)


def fill(n: int, seed: int) -> None:
    from alerts.actions import seed_actions
    from alerts.extensions import db
    from alerts.models import Action, Alert, Click, Signature, Subscriber, SubscriberTopic, utcnow

    rnd = random.Random(seed)
    seed_actions()
    ids = {a.slug: a.id for a in db.session.scalars(sa.select(Action))}
    now = utcnow()
    db.session.execute(sa.insert(Subscriber), [
        {"email": f"p{i:07d}@example.org", "status": "confirmed", "source": rnd.choice(["web", "import"]),
         "created_at": now - timedelta(days=rnd.randrange(1000)), "confirmed_at": now}
        for i in range(n)])
    subs = db.session.execute(sa.select(Subscriber.id, Subscriber.email)).all()
    alert = Alert(subject="earlier", state="sent")
    db.session.add(alert)
    db.session.flush()
    sigs, topics, clicks = [], [], []
    for sid, email in subs:
        for slug in (RIKERS, DETENTION):
            roll = rnd.random()
            if roll < 0.35:
                by_address = roll >= 0.30
                sigs.append({"action_id": ids[slug], "subscriber_id": None if by_address else sid,
                             "email": email, "email_key": email, "name": "", "source": "action-center",
                             "created_at": now - timedelta(days=rnd.randrange(90))})
        if rnd.random() < 0.10:
            topics.append({"subscriber_id": sid, "topic": rnd.choice(["detention", "mental-health"])})
        if rnd.random() < 0.20:
            clicks.append({"alert_id": alert.id, "subscriber_id": sid, "link_index": 0, "machine": False,
                           "at": now - timedelta(days=rnd.randrange(90))})
    for table, rows in ((Signature, sigs), (SubscriberTopic, topics), (Click, clicks)):
        for i in range(0, len(rows), 5000):
            db.session.execute(sa.insert(table), rows[i:i + 5000])
    db.session.commit()


def timed(fn, repeat: int) -> tuple[float, object]:
    runs, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), out


def run(args, workdir: Path) -> dict:
    url = bench_database_url(args, workdir)
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    redis = BenchRedis.start(workdir, args.redis_url)  # else create_app starts the embedded one
    try:
        return measure(args, url, redis.url)
    finally:
        redis.stop()


def measure(args, url: str, redis_url: str) -> dict:
    """Fill the database, then time each audience's count and insert beside the floor."""
    from alerts import audiences, create_app
    from alerts.blasts import state
    from alerts.blasts.compose import save_alert
    from alerts.extensions import db
    from alerts.models import Alert, Delivery, Subscriber

    # One chunk: the insert timed is the whole audience's (a blast fixes it in chunks).
    app = create_app({"SECRET_KEY": "bench", "SECRET_KEYS": ["bench"], "SQLALCHEMY_DATABASE_URI": url,
                      "REDIS_URL": redis_url, "BLAST_FILL_CHUNK": 10**9})
    fresh_schema(app)
    with app.app_context():
        t0 = time.perf_counter()
        fill(args.subscribers, args.seed)
        print(f"{args.subscribers:,} subscribers filled in {time.perf_counter() - t0:.1f}s "
              f"({database_label(url)})", file=sys.stderr)
        if url.startswith("postgresql"):
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        floor, total = timed(lambda: db.session.scalar(
            sa.select(sa.func.count()).select_from(Subscriber).where(Subscriber.status == "confirmed")),
            args.repeat)
        if total != args.subscribers:
            raise BenchError(f"{total:,} confirmed subscribers counted, {args.subscribers:,} filled")
        rows = {}
        for name, rules in AUDIENCES.items():
            alert = save_alert(None, subject=name[:200], intro_md="x", action_slugs=[RIKERS, DETENTION],
                               audience=rules)
            db.session.commit()
            parsed = audiences.parse(alert.audience)
            linked = audiences.linked_action_ids(alert)
            count_s, size = timed(lambda p=parsed, li=linked: audiences.size(p, li), args.repeat)

            def insert(alert_id=alert.id):
                t = state.start_blast(alert_id)
                db.session.rollback()  # undo: the next run starts from a draft again
                return t

            insert_s, written = timed(insert, max(1, args.repeat // 2))
            if written != size:
                raise BenchError(f"{name}: the blast wrote {written:,} deliveries, the count said {size:,}")
            rows[name] = {"size": size, "count_ms": round(count_s * 1000, 1),
                          "count_x_floor": round(count_s / floor, 1), "insert_ms": round(insert_s * 1000, 1),
                          "insert_x_floor": round(insert_s / floor, 1)}
        db.session.execute(sa.delete(Delivery))
        db.session.execute(sa.delete(Alert))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return {"database": database_label(url), "subscribers": args.subscribers,
            "floor_ms": round(floor * 1000, 1), "audiences": rows}


def render(r: dict) -> str:
    lines = [f"database: {r['database']}; subscribers: {r['subscribers']:,}; "
             f"floor (count of confirmed): {r['floor_ms']:.1f} ms",
             f"{'audience':<38} {'size':>8} {'count ms':>9} {'x floor':>8} {'insert ms':>10} {'x floor':>8}"]
    for name, a in r["audiences"].items():
        lines.append(f"{name:<38} {a['size']:>8,} {a['count_ms']:>9.1f} {a['count_x_floor']:>8.1f} "
                     f"{a['insert_ms']:>10.1f} {a['insert_x_floor']:>8.1f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    return run_bench("audience", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
