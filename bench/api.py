"""The REST API at list size: GET /api/v1/subscribers?limit=100 beside a bare Flask JSON handler.

Seeds N subscribers (PostgreSQL: one INSERT … SELECT generate_series, then VACUUM ANALYZE;
SQLite: batched inserts), makes a read token, then times in one process through
`app.test_client()`, each `--rounds` times and alternating with the floor (a bare Flask view
answering `jsonify(items=[], next=None)`, served the same way): the first page, a deep page
(the cursor 90 % of the way down), a page filtered by status (one in 20 is unsubscribed) and
by source (one in five), a filter no row matches (the primary key alone would be read whole;
the (source, id) index makes it a range scan), one subscriber by id, and the walk of the first
5,000 rows page by page. Also, as a reference, a bare view answering 100 fixed rows of the
same shape (what the JSON of a page costs alone). Prints medians, p90 and ratios to the
floor; the goal is a page in well under 100 ms (held to: median under 100 ms).

    .venv/bin/python -m bench.api --subscribers 1000000 --postgres     # a private PostgreSQL
    .venv/bin/python -m bench.api --subscribers 1000000                # a SQLite file
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

GOAL_MS = 100
# A filter no row matches: without an index on (source, id) the whole primary key is read.
NO_MATCH = "filtered: source matching no row"
CHUNK = 20_000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subscribers", type=int, default=100_000)
    p.add_argument("--postgres", action="store_true", help="start a private PostgreSQL for the run")
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=None)
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--keep", action="store_true")
    return p.parse_args(argv)


SOURCES = ("web-form", "action-center", "import", "share", "petition-page")


def seed(app, n: int) -> None:
    import sqlalchemy as sa

    from alerts.extensions import db
    from alerts.models import Subscriber, utcnow

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text(
                "INSERT INTO subscribers (email, email_key, token_key, legacy_links, status, created_at, "
                "confirmed_at, source, first_name, last_name, postal_code, language) "
                "SELECT e, e, md5('bench' || i), false, "
                " CASE WHEN i % 20 = 7 THEN 'unsubscribed' ELSE 'confirmed' END, "
                " now() - interval '1 second' * (:n - i), now() - interval '1 second' * (:n - i), "
                " (ARRAY['web-form', 'action-center', 'import', 'share', 'petition-page'])[1 + i % 5], "
                " 'Reader', 'Number ' || i, '10001', 'en' FROM "
                "(SELECT i, 'reader' || lpad(i::text, 7, '0') || '@example.net' AS e "
                " FROM generate_series(0, :n - 1) AS i) AS g"), {"n": n})
            db.session.commit()
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE"))
        else:
            now = utcnow()
            table_ = Subscriber.__table__
            for start in range(0, n, CHUNK):
                rows = []
                for i in range(start, min(n, start + CHUNK)):
                    email = f"reader{i:07d}@example.net"
                    rows.append({"email": email, "email_key": email, "token_key": f"{i:032x}",
                                 "status": "unsubscribed" if i % 20 == 7 else "confirmed",
                                 "created_at": now, "confirmed_at": now, "source": SOURCES[i % 5],
                                 "first_name": "Reader", "last_name": f"Number {i}", "postal_code": "10001",
                                 "language": "en"})
                db.session.execute(sa.insert(table_), rows)
            db.session.commit()
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        db.session.remove()


def timed(client, path: str, headers: dict | None = None) -> float:
    t0 = time.perf_counter()
    res = client.get(path, headers=headers)
    ms = (time.perf_counter() - t0) * 1000
    if res.status_code != 200:
        raise BenchError(f"GET {path} answered {res.status_code}: {res.get_data(as_text=True)[:300]}")
    return ms


def walk(client, headers: dict, rows: int) -> tuple[float, int]:
    """The first `rows` subscribers page by page (following `next`): ms in all, rows seen."""
    seen, url = 0, "/api/v1/subscribers?limit=100"
    t0 = time.perf_counter()
    while url and seen < rows:
        body = client.get(url, headers=headers).get_json()
        seen += len(body["items"])
        url = body["next"] and body["next"].split("://", 1)[1].split("/", 1)[1]
        url = url and "/" + url
    return (time.perf_counter() - t0) * 1000, seen


def run(args, workdir: Path) -> dict:
    server = None
    if args.postgres:
        from alerts.testing.postgres import PostgresServer

        server = PostgresServer(workdir).init().start()
        database_url = server.url
    else:
        database_url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    try:
        import os

        os.environ.update(DATABASE_URL=database_url, REDIS_URL=redis.url, SECRET_KEY="bench-api",
                          API_RATE_LIMIT="1000000/minute")
        from flask import Flask, jsonify

        from alerts import apitokens, create_app
        from alerts.extensions import db

        app = create_app()
        fresh_schema(app)
        t0 = time.perf_counter()
        seed(app, args.subscribers)
        seeded = time.perf_counter() - t0
        with app.app_context():
            _row, plain = apitokens.create("bench", ["read"], created_by="cli")
            db.session.commit()
        headers = {"Authorization": f"Bearer {plain}"}
        client = app.test_client()
        first = client.get("/api/v1/subscribers?limit=100", headers=headers).get_json()["items"]

        floor_app = Flask("floor")
        floor_app.add_url_rule("/", "bare", lambda: jsonify(items=[], next=None))
        floor_app.add_url_rule("/rows", "rows", lambda: jsonify(items=first, next=None))
        floor = floor_app.test_client()
        deep = int(args.subscribers * 0.9)
        paths = {
            "first page": "/api/v1/subscribers?limit=100",
            "deep page (cursor 90% down)": f"/api/v1/subscribers?limit=100&after={deep}",
            "filtered: status=unsubscribed": "/api/v1/subscribers?limit=100&status=unsubscribed",
            "filtered: source=share": "/api/v1/subscribers?limit=100&source=share",
            "one subscriber by id": f"/api/v1/subscribers/{deep}",
            NO_MATCH: "/api/v1/subscribers?limit=100&source=nowhere",
        }
        for path in paths.values():  # warm: pooled connections, compiled statements
            timed(client, path, headers)
        timed(floor, "/")
        timed(floor, "/rows")
        floor_ms: list[float] = []
        rows_ms: list[float] = []
        api_ms: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):
            for name, path in paths.items():
                floor_ms.append(timed(floor, "/"))
                api_ms[name].append(timed(client, path, headers))
            rows_ms.append(timed(floor, "/rows"))
        walk_ms, walked = walk(client, headers, min(5000, args.subscribers))
        floor_median = statistics.median(floor_ms)
        out = {}
        for name, values in api_ms.items():
            values.sort()
            median = statistics.median(values)
            p90 = values[int(0.9 * (len(values) - 1))]
            out[name] = {"median_ms": round(median, 2), "p90_ms": round(p90, 2),
                         "ratio_to_floor": round(median / floor_median, 1), "goal_met": median < GOAL_MS}
        expected_walk = min(5000, args.subscribers)
        return {"subscribers": args.subscribers, "database": database_label(database_url),
                "seed_seconds": round(seeded, 1), "floor_median_ms": round(floor_median, 3),
                "rows_reference_ms": round(statistics.median(rows_ms), 3), "rounds": args.rounds,
                "pages": out, "walk_ms": round(walk_ms, 1), "walk_rows": walked,
                "complete": walked == expected_walk and all(p["goal_met"] for p in out.values())}
    finally:
        redis.stop()
        if server is not None:
            server.remove()


def render(r: dict) -> str:
    rows = [("subscribers", f"{r['subscribers']:,} ({r['database']}; seeded in {r['seed_seconds']} s)"),
            ("floor: bare Flask JSON view", f"{r['floor_median_ms']} ms median, same process, same client"),
            ("reference: bare view, 100 rows",
             f"{r['rows_reference_ms']} ms median (the JSON of a page alone)")]
    for name, p in r["pages"].items():
        goal = f" (goal < {GOAL_MS} ms: {'met' if p['goal_met'] else 'NOT met'})"
        rows.append((name, f"{p['median_ms']} ms median, p90 {p['p90_ms']} ms, {p['ratio_to_floor']}x the "
                           f"floor{goal}"))
    rows.append(("walk, 100 a page", f"{r['walk_rows']:,} rows in {r['walk_ms']} ms"))
    return table(rows, f"REST API at {r['subscribers']:,} subscribers, {r['rounds']} rounds")


def main(argv=None) -> int:
    args = parse_args(argv)
    return run_bench("api", args, run, render, keep=args.keep, ok=lambda result: result["complete"])


if __name__ == "__main__":
    sys.exit(main())
