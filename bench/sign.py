"""Signing benchmark: a petition going viral, signed concurrently through the app under gunicorn.

    python -m bench.sign --signatures 5000 [--clients 8] [--rate 500] [--existing 100000] [--json out.json]

Starts Redis (REDIS_URL, or a redis-server of its own), a fresh database (SQLite in a temporary
directory unless --database-url names one whose name contains 'bench'), seeds the seven actions
(optionally with --existing signatures already on the petition, so the unique index is the size
of a petition that has been going for a while) and serves `wsgi:app` with gunicorn on 127.0.0.1.
Each simulated visitor is an asyncio client on raw streams: one GET /actions/<slug>?src=share for
its session cookie and CSRF token (a visitor arriving from a share link), then POST
/actions/<slug>/sign with a new name and address each time; an accepted signature answers 303 to
the thank-you page (not followed: the bench measures the signing). Afterwards it checks that every
accepted signature has exactly one row, counted, attributed to `share`, and that the action's
count is what was accepted: nothing lost.

In the same run, before the app, the floor (bench/floor.py: a bare Flask POST handler behind a
form page with a hidden token) is served with the same gunicorn settings and driven by the same
client with the same form fields. The table gives the app's figures as ratios to the floor's and
says whether the goal is reached: throughput at least 0.5x the floor's, p99 at most 3x, nothing
lost. All load comes from 127.0.0.1, so the per-IP and per-address signing limits are raised for
the run (the output says to what).
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

from bench import floor
from bench.lib import BenchError
from bench.lib.cpu import other_load_text
from bench.lib.database import check_database_url, database_label, fresh_schema
from bench.lib.harness import apply_settings, run_bench, table, web_bench_args
from bench.lib.load import Outcome, Phase, drive, latency_summary, measured
from bench.lib.processes import cpu_count
from bench.lib.redis import BenchRedis
from bench.lib.web import Gunicorn, GunicornSettings, Visitor

RATE_LIMIT = "1000000/minute"
SLUG = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"


def parse_args(argv=None):
    p = web_bench_args("Signing benchmark (see the module docstring).", "signatures", "signatures",
                                5000)
    p.add_argument("--existing", type=int, default=0, help="signatures on the petition before the run")
    return p.parse_args(argv)


def fields(email: str) -> dict[str, str]:
    """What a visitor types: the same fields for the app and the floor."""
    return {"name": "Bench Signer", "email": email, "postal_code": "10001", "website": "",
            "src": "share"}


def prefill(app, existing: int) -> int:
    """`existing` signatures on the petition, in bulk; returns the action's id."""
    import sqlalchemy as sa

    from alerts.actions import seed_actions
    from alerts.extensions import db
    from alerts.models import Action, Signature, utcnow

    with app.app_context():
        seed_actions()
        db.session.commit()
        action_id = db.session.scalar(sa.select(Action.id).where(Action.slug == SLUG))
        now = utcnow()
        for start in range(0, existing, 10_000):
            db.session.execute(sa.insert(Signature), [
                {"action_id": action_id, "email": f"earlier{i:07d}@example.com",
                 "email_key": f"earlier{i:07d}@example.com", "name": "Earlier Signer",
                 "source": "direct", "created_at": now, "confirmed_at": now}
                for i in range(start, min(existing, start + 10_000))
            ])
            db.session.commit()
        db.session.remove()
    return action_id


def stored(app, action_id: int, prefix: str) -> tuple[dict[str, tuple[int, str, bool]], int]:
    """The run's signature rows by address (count of rows, source, counted), and the live count."""
    import sqlalchemy as sa

    from alerts.actions import signing
    from alerts.extensions import db
    from alerts.models import Signature

    with app.app_context():
        rows = db.session.execute(
            sa.select(Signature.email_key, sa.func.count(), sa.func.min(Signature.source),
                      sa.func.count(Signature.confirmed_at))
            .where(Signature.action_id == action_id, Signature.email_key.like(f"{prefix}%"))
            .group_by(Signature.email_key)
        ).all()
        total = signing.count(action_id)
        db.session.remove()
    return {key: (n, source, confirmed == n) for key, n, source, confirmed in rows}, total


def run(args, workdir: Path) -> dict:
    if args.signatures < 1 or args.clients < 1:
        raise BenchError("--signatures and --clients must be at least 1")
    run_id = secrets.token_hex(4)
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
    check_database_url(database_url, args.force_drop)
    redis = BenchRedis.start(workdir, args.redis_url)
    server = None
    try:
        settings = {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "SECRET_KEY": secrets.token_urlsafe(32),
            "CELERY_TASK_QUEUE": f"bench-sign-{run_id}",
            "SIGN_RATE_LIMIT": RATE_LIMIT,
            "SIGN_ADDRESS_RATE_LIMIT": RATE_LIMIT,
            "BASE_URL": "https://alerts.example.org",
            "SMTP_URL": "smtp://127.0.0.1:9",  # nothing is mailed: no box is ticked, no worker runs
        }
        env = apply_settings(settings, args.settings)

        from alerts import create_app

        app = create_app()
        fresh_schema(app)
        action_id = prefill(app, args.existing)

        server_settings = GunicornSettings(args.gunicorn_workers, args.worker_class, args.threads)
        floor_n = args.floor_requests or args.signatures
        print(f"[bench] floor: bare Flask under {server_settings.label}, {args.warmup} warm-up, "
              f"{floor_n:,} measured", file=sys.stderr)
        floor_figures = floor.measure(
            server_settings, workdir, env, requests=floor_n, warmup=args.warmup, clients=args.clients,
            rate=args.rate, timeout=args.timeout, path=f"/actions/{SLUG}/sign",
            fields=lambda i: fields(f"floor-{i:07d}@example.net"),
        )

        server = Gunicorn("wsgi:app", server_settings, env, workdir / "gunicorn.log")
        prefix = f"sign-{run_id}-"
        warm = [f"{prefix}w{i:06d}@example.net" for i in range(args.warmup)]
        emails = [f"{prefix}{i:07d}@example.net" for i in range(args.signatures)]
        warm_out, out = Outcome(), Outcome()
        page, ok = f"/actions/{SLUG}?src=share", (303,)

        async def sign(v: Visitor, email: str) -> int:
            return await v.post_form(f"/actions/{SLUG}/sign", fields(email), b"")

        async def both() -> Phase:
            visitors = [Visitor("127.0.0.1", server.port, args.timeout) for _ in range(args.clients)]
            try:
                await drive(visitors, warm, sign, None, warm_out, ok, page)
                return await measured(visitors, emails, sign, args.rate, out, ok, page,
                                               server_pid=server.proc.pid)
            finally:
                for v in visitors:
                    await v.close()

        print(f"[bench] {args.warmup} warm-up signatures, then {args.signatures:,} measured "
              f"({args.clients} clients{f', {args.rate:g}/s' if args.rate else ''}; "
              f"{args.existing:,} already on the petition)", file=sys.stderr)
        phase = asyncio.run(both())
        server.stop()
        server = None

        # Nothing lost: one counted row per accepted signature, attributed to the share link.
        accepted = warm_out.accepted + out.accepted
        rows, total = stored(app, action_id, prefix)
        missing = [e for e in accepted if e not in rows]
        doubled = sum(1 for n, _s, _c in rows.values() if n != 1)
        misattributed = sum(1 for _n, source, _c in rows.values() if source != "share")
        uncounted = sum(1 for _n, _s, counted in rows.values() if not counted)
        lost = len(missing) + doubled + uncounted + (total != args.existing + len(accepted))

        latencies = out.latencies_ms
        rps = len(latencies) / phase.wall if phase.wall else 0.0
        latency = latency_summary(latencies)
        errors = len(out.errors) + len(warm_out.errors)
        server_cpu_ms = 1000 * phase.server_cpu_seconds / max(len(latencies), 1)
        return {
            "signatures": args.signatures,
            "warmup": args.warmup,
            "existing": args.existing,
            "clients": args.clients,
            "mode": f"open loop at {args.rate:g}/s" if args.rate else "closed loop",
            "database": database_label(database_url),
            "redis": redis.description,
            "cpus": cpu_count(),
            "server": server_settings.label,
            "rate_limit": f"SIGN_RATE_LIMIT and SIGN_ADDRESS_RATE_LIMIT={RATE_LIMIT} "
                          "(raised: all load comes from 127.0.0.1)",
            "wall_seconds": round(phase.wall, 3),
            "requests_per_second": round(rps, 1),
            "latency_ms": latency,
            "server_cpu_ms_per_signature": round(server_cpu_ms, 3),
            "statuses": {str(k): v for k, v in sorted(out.statuses.items())},
            "errors": errors,
            "error_samples": (warm_out.errors + out.errors)[:5],
            "connections_opened": phase.connects,
            "machine_cpu_busy_percent": phase.busy_percent,
            "cpu_by_process": phase.cpu_top,
            "other_load": phase.other_load,
            "check": {
                "accepted": len(accepted),
                "rows": len(rows),
                "missing_rows": len(missing),
                "doubled": doubled,
                "uncounted": uncounted,
                "misattributed": misattributed,
                "action_count": total,
                "expected_count": args.existing + len(accepted),
                "lost": lost,
            },
            "floor": floor_figures,
            "ratio_to_floor": floor.compare(rps, latency["p99"], floor_figures, lost + misattributed, errors,
                                            app_server_cpu_ms=server_cpu_ms),
        }
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def render_table(r: dict) -> str:
    lat = r["latency_ms"]
    c = r["check"]
    rows = [
        ("signatures (measured)", f"{r['signatures']:,} after {r['warmup']} warm-up; "
                                  f"{r['existing']:,} on the petition before"),
        ("load", f"{r['clients']} asyncio clients, {r['mode']}; GET the action page once per client, "
                 "then POSTs"),
        ("server", f"{r['server']} on 127.0.0.1, {r['cpus']} CPUs"),
        ("database", r["database"]),
        ("rate limit", r["rate_limit"]),
        ("-", ""),
        ("wall seconds", f"{r['wall_seconds']:.2f}"),
        ("signatures per second", f"{r['requests_per_second']:,.1f}"),
        ("latency p50 / p90", f"{lat['p50']} ms / {lat['p90']} ms"),
        ("latency p99", f"{lat['p99']} ms"),
        ("latency max", f"{lat['max']} ms"),
        ("server CPU per signature", f"{r['server_cpu_ms_per_signature']:.3f} ms (gunicorn processes, "
                                     f"user+sys; floor: {r['floor']['server_cpu_ms_per_request']:.3f} ms)"),
        ("HTTP statuses", ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "-"),
        ("errors", f"{r['errors']}"),
        ("machine CPU", f"{r['machine_cpu_busy_percent']}% busy"),
        ("other load on the machine", other_load_text(r["other_load"])),
        ("-", ""),
        ("accepted signatures", f"{c['accepted']:,} (with warm-up)"),
        ("signature rows", f"{c['rows']:,} ({c['doubled']} doubled, {c['uncounted']} not counted, "
                           f"{c['misattributed']} not attributed to the share link)"),
        ("action's count", f"{c['action_count']:,} (expected {c['expected_count']:,})"),
        ("lost", f"{c['lost']} ({c['missing_rows']} without a row)"),
        ("-", ""),
        *floor.table_rows(r["floor"], r["ratio_to_floor"], unit="signatures"),
    ]
    return table(rows, f"Signing benchmark: {r['signatures']:,} signatures, {r['database']}")


def main(argv=None) -> int:
    def ok(result) -> bool:
        c = result["check"]
        return (c["lost"] == 0 and c["misattributed"] == 0 and result["errors"] == 0 and c["accepted"] > 0
                and result["floor"]["errors"] == 0)

    return run_bench("sign", parse_args(argv), run, render_table,
                     logs=("floor-gunicorn.log", "gunicorn.log"), ok=ok)


if __name__ == "__main__":
    sys.exit(main())
