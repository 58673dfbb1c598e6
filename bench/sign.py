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
    database_url = bench_database_url(args, workdir)
    redis = BenchRedis.start(workdir, args.redis_url)
    server = None
    try:
        env = web_app_env(args, database_url, redis.url, f"bench-sign-{run_id}", SIGN_RATE_LIMIT=RATE_LIMIT,
                          SIGN_ADDRESS_RATE_LIMIT=RATE_LIMIT)  # no box is ticked: nothing to mail

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
        page, ok = f"/actions/{SLUG}?src=share", (303,)

        async def sign(v: Visitor, email: str) -> int:
            return await v.post_form(f"/actions/{SLUG}/sign", fields(email), b"")

        print(f"[bench] {args.warmup} warm-up signatures, then {args.signatures:,} measured "
              f"({args.clients} clients{f', {args.rate:g}/s' if args.rate else ''}; "
              f"{args.existing:,} already on the petition)", file=sys.stderr)
        load = warm_then_measure(server.port, args.clients, args.timeout, warm, emails, sign, args.rate, ok,
                                 page, server.proc.pid)
        server.stop()
        server = None

        # Nothing lost: one counted row per accepted signature, attributed to the share link.
        accepted = load.accepted
        rows, total = stored(app, action_id, prefix)
        missing = [e for e in accepted if e not in rows]
        doubled = sum(1 for n, _s, _c in rows.values() if n != 1)
        misattributed = sum(1 for _n, source, _c in rows.values() if source != "share")
        uncounted = sum(1 for _n, _s, counted in rows.values() if not counted)
        lost = len(missing) + doubled + uncounted + (total != args.existing + len(accepted))

        return {
            "signatures": args.signatures,
            "existing": args.existing,
            **web_run_figures(args, database_url, redis, server_settings),
            "rate_limit": f"SIGN_RATE_LIMIT and SIGN_ADDRESS_RATE_LIMIT={RATE_LIMIT} "
                          "(raised: all load comes from 127.0.0.1)",
            **load.figures("signature"),
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
            "ratio_to_floor": floor.compare_load(load, floor_figures, lost + misattributed),
        }
    finally:
        if server is not None:
            server.stop()
        redis.stop()


def render_table(r: dict) -> str:
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
        *load_rows(r, "signatures", "signature"),
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
