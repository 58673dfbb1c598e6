"""Journey benchmark: N people due for a step in the same minute, and how fast beat's passes hand
them to the blast engine.

    python -m bench.journey [--people 100000] [--database-url URL] [--json out.json]

Fills a fresh database (a new SQLite file, or a PostgreSQL database whose name contains
"bench") with N confirmed subscribers, a journey of one email step and N members all due now,
then runs `journeys.run_due` pass after pass (JOURNEY_BATCH people each, committed, batches
queued to Redis after each commit, as the beat task does) until nobody is due. What it measures
is the journey's own work per person: reading who is due, the checks (unsubscribed,
suppressed, signed, the daily cap), one delivery row and the member's next step.

The floor, measured in the same run on the same database, is the blast engine's own start of an
alert to the same N people: one INSERT … SELECT of their delivery rows. The journey's rate is
printed as people a second and as a ratio to that floor; for it to keep up with sending, it must
also be above what `bench/blast.py` measures the engine sending (1,300–1,550 messages a second
on the project's 2-core machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from bench.lib import BenchError
from bench.lib.database import bench_database_url, database_label, fresh_schema
from bench.lib.harness import run_bench
from bench.lib.redis import BenchRedis

BLAST_SEND_RATE = 1300  # messages a second, the lower of bench/blast.py's runs (bench/RESULTS.md)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Journey benchmark (see the module docstring).")
    p.add_argument("--people", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000, help="JOURNEY_BATCH: people per pass")
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None,
                   help="the app's Redis (default: a redis-server of the bench's own)")
    p.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    return p.parse_args(argv)


def fill(n: int) -> tuple[int, int]:
    """N confirmed subscribers, a journey with one step, everyone due now; (journey, step alert)."""
    from alerts import journeys
    from alerts.actions import seed_actions
    from alerts.extensions import db
    from alerts.models import JourneyMember, Subscriber, utcnow

    seed_actions()
    now = utcnow()
    for start in range(0, n, 10_000):
        db.session.execute(sa.insert(Subscriber), [
            {"email": f"p{i:07d}@example.org", "status": "confirmed", "source": "web",
             "created_at": now, "confirmed_at": now} for i in range(start, min(n, start + 10_000))])
    journey = journeys.create("Bench journey", "imported")
    step = journeys.add_step(journey, after_minutes=0, subject="Pick one action this week",
                             body="Thank you for joining. **One action** takes a minute.")
    ids = list(db.session.scalars(sa.select(Subscriber.id).order_by(Subscriber.id)))
    for start in range(0, n, 10_000):
        db.session.execute(sa.insert(JourneyMember), [
            {"journey_id": journey.id, "subscriber_id": sid, "entered_at": now,
             "next_position": step.position, "due_at": now} for sid in ids[start:start + 10_000]])
    db.session.commit()
    assert step.alert_id is not None
    return journey.id, step.alert_id


def run(args, workdir: Path) -> dict:
    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    try:
        return measure(args, url, redis.url)
    finally:
        redis.stop()


def measure(args, url: str, redis_url: str) -> dict:
    from alerts import create_app, journeys
    from alerts.blasts import state
    from alerts.blasts.compose import save_alert
    from alerts.extensions import db
    from alerts.models import Delivery, JourneyMember

    app = create_app({"SECRET_KEY": "bench", "SECRET_KEYS": ["bench"], "SQLALCHEMY_DATABASE_URI": url,
                      "REDIS_URL": redis_url, "BLAST_FILL_CHUNK": 10**9, "JOURNEY_DAILY_CAP": 5,
                      "CELERY_TASK_QUEUE": "bench-journey", "APPROVAL_MIN_RECIPIENTS": 0})
    fresh_schema(app)
    with app.app_context():
        t0 = time.perf_counter()
        journey_id, step_alert = fill(args.people)
        print(f"{args.people:,} people filled in {time.perf_counter() - t0:.1f}s ({database_label(url)})",
              file=sys.stderr)
        if url.startswith("postgresql"):
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()

        # The floor: the blast engine starting an alert to the same people (one INSERT … SELECT).
        alert = save_alert(None, subject="The floor", intro_md="x", action_slugs=[], audience={})
        db.session.commit()
        t0 = time.perf_counter()
        written = state.start_blast(alert.id)
        db.session.commit()
        floor_s = time.perf_counter() - t0
        if written != args.people:
            raise BenchError(f"the blast wrote {written:,} deliveries for {args.people:,} people")
        db.session.execute(sa.delete(Delivery).where(Delivery.alert_id == alert.id))
        db.session.commit()

        passes, t0 = 0, time.perf_counter()
        queued = 0
        while True:
            done = journeys.run_due(limit=args.batch)
            db.session.commit()
            passes += 1
            queued += done.queued
            if done.looked_at < args.batch:
                break
        journey_s = time.perf_counter() - t0
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)
                                 .where(Delivery.alert_id == step_alert))
        left = db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)
                                 .where(JourneyMember.exited_at.is_(None)))
        if rows != args.people or queued != args.people or left:
            raise BenchError(f"{rows:,} step deliveries and {left:,} people still in for {args.people:,}")
        db.session.remove()
        db.engine.dispose()
    per_s = args.people / journey_s
    return {"database": database_label(url), "people": args.people, "batch": args.batch, "passes": passes,
            "journey_s": round(journey_s, 2), "people_per_s": round(per_s),
            "floor_s": round(floor_s, 2), "floor_rows_per_s": round(args.people / floor_s),
            "x_floor": round(journey_s / floor_s, 1),
            "x_blast_send_rate": round(per_s / BLAST_SEND_RATE, 1)}


def render(r: dict) -> str:
    return "\n".join([
        f"database: {r['database']}; {r['people']:,} people due at once; "
        f"{r['passes']} passes of {r['batch']:,}",
        f"journey passes: {r['journey_s']:.2f} s = {r['people_per_s']:,} people/s",
        f"floor (the blast's INSERT … SELECT of the same people): {r['floor_s']:.2f} s = "
        f"{r['floor_rows_per_s']:,} rows/s; the journey takes {r['x_floor']}x the floor's time",
        f"against the blast engine's sending rate ({BLAST_SEND_RATE:,} msg/s, bench/blast.py): "
        f"{r['x_blast_send_rate']}x — the passes {'keep' if r['x_blast_send_rate'] >= 1 else 'do NOT keep'} "
        f"ahead of sending",
    ])


def main(argv=None) -> int:
    return run_bench("journey", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
