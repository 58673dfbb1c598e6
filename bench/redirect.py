"""Redirect benchmark: tracked links (`GET /r/<token>/<index>`) under gunicorn, beside the floor.

    python -m bench.redirect --clicks 5000 [--clients 8] [--rate R] [--database-url …] [--json out.json]

Builds a fresh database (SQLite in a temporary directory unless --database-url names one whose
name contains 'bench'), an alert and one delivery per simulated recipient (the blast is started,
so the alert's links are frozen, but nothing is sent), and each recipient's tracked links made
exactly as a blast makes them. Then, in one run:

1. the web floor (`floor.py`, kind "redirect": a bare Flask `GET /r/<token>` answering 302)
   under the same gunicorn settings and the same asyncio client;
2. the app (`wsgi:app`, TRACK_CLICKS=person) answering the tracked links: redirects per
   second and latency, each answer checked to be a 302 to the right action;
3. nothing lost: every answered click is in the Redis list; then the recording side as the
   beat task runs it (`tracking.drain.drain`, in this process): clicks recorded per second,
   and one `clicks` row per answered click.

Figures are printed as ratios to the floor (goal: throughput >= 0.5x, p99 <= 3x, nothing lost).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from pathlib import Path

from bench import floor
from bench.lib.database import bench_database_url, fresh_schema
from bench.lib.harness import run_bench, table, web_app_env, web_bench_args, web_run_figures
from bench.lib.load import load_rows, warm_then_measure
from bench.lib.redis import BenchRedis
from bench.lib.web import Gunicorn, GunicornSettings, Visitor

ACTIONS = 3


def parse_args(argv=None):
    p = web_bench_args("Redirect benchmark (see the module docstring).", "clicks", "redirects", 5000,
                                warmup=300, floor=False)
    return p.parse_args(argv)


def prepare(app, recipients: int) -> tuple[int, list[str], list[str]]:
    """An alert with ACTIONS actions, started for `recipients` subscribers; each click's path
    and where it must lead, recipient by recipient, link by link in turn."""
    import sqlalchemy as sa

    from alerts.actions import open_actions, seed_actions
    from alerts.blasts.compose import save_alert
    from alerts.blasts.content import MessageFactory, action_slot
    from alerts.blasts.state import start_blast
    from alerts.extensions import db
    from alerts.models import Alert, Delivery, Subscriber

    with app.app_context():
        seed_actions()
        db.session.execute(sa.insert(Subscriber), [
            {"email": f"reader{i:07d}@example.net", "status": "confirmed"} for i in range(recipients)])
        slugs = [a.slug for a in open_actions()[:ACTIONS]]
        alert = save_alert(None, subject="Bench", intro_md="Bench.", preheader="", action_slugs=slugs,
                           created_by="bench")
        db.session.commit()
        app.config["BLAST_FILL_CHUNK"] = 10**9  # every recipient fixed now: each click needs its delivery
        start_blast(alert.id)
        db.session.commit()
        factory = MessageFactory.for_alert(db.session.get(Alert, alert.id))
        base = app.config["BASE_URL"]
        paths, targets = [], []
        plain = factory.action_urls(None, None)
        for n, delivery_id in enumerate(db.session.scalars(
                sa.select(Delivery.id).where(Delivery.alert_id == alert.id).order_by(Delivery.id))):
            urls = factory.tracker.wrap(plain, delivery_id)
            slot = action_slot(n % ACTIONS)
            paths.append(urls[slot][len(base):])
            targets.append(plain[slot])
        db.session.remove()
        return alert.id, paths, targets


def run(args, workdir: Path) -> dict:
    run_id = secrets.token_hex(4)
    queue = f"bench-redirect-{run_id}"
    database_url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    server = None
    try:
        env = web_app_env(args, database_url, redis.url, queue, TRACK_CLICKS="person")

        from alerts import create_app
        from alerts.extensions import db
        from alerts.models import Click
        from alerts.tracking import drain, recording

        app = create_app()
        fresh_schema(app)
        total = args.warmup + args.clicks
        alert_id, paths, targets = prepare(app, total)

        server_settings = GunicornSettings(args.gunicorn_workers, args.worker_class, args.threads)
        print(f"[bench] floor: bare Flask GET /r/<token> under {server_settings.label}", file=sys.stderr)
        floor_figures = floor.measure(server_settings, workdir, env, requests=args.clicks, warmup=args.warmup,
                                      clients=args.clients, rate=args.rate, timeout=args.timeout,
                                      kind="redirect")

        server = Gunicorn("wsgi:app", server_settings, env, workdir / "gunicorn.log")
        wrong: list[str] = []

        async def follow(v: Visitor, i: int) -> int:
            status, _ = await v.request("GET", paths[i])
            return status

        # The Location header is not kept by the client; check the targets once, apart.
        async def check_targets(sample: list[int]) -> None:
            for i in sample:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(f"HEAD {paths[i]} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
                head = (await reader.read()).decode("latin-1")
                writer.close()
                location = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")
                                 if line.lower().startswith("location:")), None)
                if location != targets[i]:
                    wrong.append(f"{paths[i]} -> {location}, wanted {targets[i]}")

        print(f"[bench] {args.warmup} warm-up redirects, then {args.clicks:,} measured", file=sys.stderr)
        load = warm_then_measure(server.port, args.clients, args.timeout, list(range(args.warmup)),
                                 list(range(args.warmup, total)), follow, args.rate, (302,), None,
                                 server.proc.pid)
        with app.app_context():
            r = recording.client()
            answered = len(load.accepted)
            queued = r.llen(recording.queue_key())
        asyncio.run(check_targets(list(range(0, total, max(1, total // 20)))))
        server.stop()
        server = None

        # Recording, as the beat task does it (HEAD checks above are queued too, as machine clicks).
        with app.app_context():
            queued_all = r.llen(recording.queue_key())
            t0 = time.perf_counter()
            cpu0 = time.process_time()
            result = drain.drain(now=time.time() + 60, hold=0)
            drain_wall = time.perf_counter() - t0
            drain_cpu = time.process_time() - cpu0
            import sqlalchemy as sa

            rows = db.session.scalar(sa.select(sa.func.count()).select_from(Click)
                                     .where(Click.alert_id == alert_id))
            human = db.session.scalar(sa.select(sa.func.count()).select_from(Click)
                                      .where(Click.alert_id == alert_id, Click.machine.is_(False)))
            left = r.llen(recording.queue_key())
            db.session.remove()

        lost = (answered - queued) + (queued_all - rows) + left
        return {
            "clicks": args.clicks,
            **web_run_figures(args, database_url, redis, server_settings),
            **load.figures("redirect"),
            "wrong_targets": wrong[:5],
            "recording": {
                "answered": answered,
                "queued_in_redis": queued,
                "queued_with_target_checks": queued_all,
                "rows": rows,
                "rows_by_people": human,
                "left_in_redis": left,
                "batches": result.batches,
                "seconds": round(drain_wall, 3),
                "clicks_per_second": round(rows / drain_wall, 1) if drain_wall else None,
                "cpu_ms_per_click": round(1000 * drain_cpu / max(rows, 1), 3),
                "lost": lost,
            },
            "floor": floor_figures,
            "ratio_to_floor": floor.compare_load(load, floor_figures, lost + len(wrong)),
        }
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def render_table(r: dict) -> str:
    c = r["recording"]
    rows = [
        ("redirects (measured)", f"{r['clicks']:,} after {r['warmup']} warm-up, each a different recipient"),
        ("load", f"{r['clients']} asyncio clients, {r['mode']}; GET /r/<token>/<index>, expecting 302"),
        ("server", f"{r['server']} on 127.0.0.1, {r['cpus']} CPUs; TRACK_CLICKS=person"),
        ("database", r["database"]),
        ("-", ""),
        *load_rows(r, "redirects", "redirect", ("errors / wrong targets", f"{r['errors']} / "
                   f"{len(r['wrong_targets'])} (of a sample checked by HEAD)")),
        ("-", ""),
        ("answered, queued in Redis", f"{c['answered']:,}, {c['queued_in_redis']:,}"),
        ("recorded (drain, one process)", f"{c['rows']:,} clicks rows ({c['rows_by_people']:,} people's; "
                                          f"the HEAD checks are machine clicks) in {c['batches']} batches"),
        ("recording rate", f"{c['clicks_per_second']:,} clicks/s, {c['cpu_ms_per_click']} ms CPU per click "
                           f"(drainer process)"),
        ("lost", f"{c['lost']} ({c['left_in_redis']} left in Redis)"),
        ("-", ""),
        *floor.table_rows(r["floor"], r["ratio_to_floor"], unit="redirects"),
    ]
    return table(rows, f"Redirect benchmark: {r['clicks']:,} tracked clicks, {r['database']}")


def main(argv=None) -> int:
    def ok(result) -> bool:
        return (result["recording"]["lost"] == 0 and result["errors"] == 0 and not result["wrong_targets"]
                and result["floor"]["errors"] == 0)

    return run_bench("redirect", parse_args(argv), run, render_table,
                     logs=("floor-gunicorn.log", "gunicorn.log"), ok=ok)


if __name__ == "__main__":
    sys.exit(main())
