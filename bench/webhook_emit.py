"""What webhooks cost a signature: `signing.sign` and its commit, in one process, with no
endpoint (the floor), with an endpoint that wants other events, and with one that wants
`signature.created` (its outbox row in the signature's transaction and its task queued after
the commit).

    python -m bench.webhook_emit [--signatures 400] [--rounds 10] [--json out.json]

A fresh SQLite database and a Redis of the bench's own (or REDIS_URL); no worker runs, so the
queued tasks wait in Redis (and are counted: one per signature with the endpoint). Rounds
alternate the three cases in ABCCBA order; the table gives each case's median milliseconds per
signature and its ratio to the floor measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench.lib import BenchError
from bench.lib.harness import run_bench, table
from bench.lib.redis import BenchRedis

SLUG = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
CASES = ("no endpoint (floor)", "endpoint wanting other events", "endpoint wanting signature.created")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Webhook emission's cost on signing (see the module docstring).")
    p.add_argument("--signatures", type=int, default=400, help="signatures per round")
    p.add_argument("--rounds", type=int, default=10, help="rounds per case")
    p.add_argument("--json", dest="json_path")
    return p.parse_args(argv)


def run(args, workdir) -> dict:
    import sqlalchemy as sa

    from alerts import create_app, redis_conn, webhooks
    from alerts.actions import seed_actions, signing
    from alerts.extensions import db
    from alerts.models import Action, WebhookEndpoint, WebhookMessage
    from alerts.subscribers import subscriptions
    from alerts.testing.schema import fresh_schema
    from alerts.webhooks import outbox

    redis = BenchRedis.start(workdir, os.environ.get("REDIS_URL"))
    queue = "bench-webhooks"
    try:
        app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir / 'bench.db'}",
                          "REDIS_URL": redis.url, "CELERY_TASK_QUEUE": queue, "SECRET_KEY": "bench",
                          "SECRET_KEYS": ["bench"]})
        with app.app_context():
            fresh_schema()
            seed_actions()
            db.session.execute(sa.update(Action).values(requires_confirmation=False))
            db.session.commit()
            action = signing.signable(SLUG)
            if action is None:
                raise BenchError(f"no open action {SLUG!r} after seeding")
            request = subscriptions.Request(ip="203.0.113.1", user_agent="bench", source="bench")
            where = signing.attribution(None, page_source="bench")
            endpoint = WebhookEndpoint(url="https://8.8.8.8/hooks", secret="whsec_YmVuY2g=",
                                       event_types=webhooks.COMPLAINT, enabled=True)
            db.session.add(endpoint)
            db.session.commit()
            per_case: dict[str, list[float]] = {case: [] for case in CASES}
            serial = 0
            order = [*CASES, *reversed(CASES)]
            for _ in range(max(1, args.rounds // 2)):
                for case in order:
                    endpoint.enabled = case != CASES[0]
                    endpoint.event_types = (webhooks.SIGNATURE_CREATED if case == CASES[2]
                                            else webhooks.COMPLAINT)
                    db.session.commit()
                    outbox.forget()
                    started = time.perf_counter()
                    for _ in range(args.signatures):
                        serial += 1
                        entry = signing.Entry(name="Bench Signer", email=f"s{serial}@example.com",
                                              postal_code="10001")
                        signing.sign(action, entry, signer=None, where=where, request=request)
                        db.session.commit()
                    per_case[case].append((time.perf_counter() - started) * 1000 / args.signatures)
            messages = db.session.scalar(sa.select(sa.func.count()).select_from(WebhookMessage))
            queued = redis_conn.client(redis.url).llen(f"{queue}.webhooks")
        expected = args.signatures * len([c for c in order if c == CASES[2]]) * max(1, args.rounds // 2)
        floor = statistics.median(per_case[CASES[0]])
        return {
            "signatures_per_round": args.signatures, "rounds_per_case": len(per_case[CASES[0]]),
            "cases": [{"case": case, "median_ms": round(statistics.median(ms), 3),
                       "ratio_to_floor": round(statistics.median(ms) / floor, 2)}
                      for case, ms in per_case.items()],
            "outbox_rows": messages, "expected_rows": expected, "tasks_queued": queued,
            "database": "SQLite (a file in a scratch directory)", "redis": redis.description,
        }
    finally:
        redis.stop()


def render(r: dict) -> str:
    rows = [(c["case"], f"{c['median_ms']:.3f} ms per signature, {c['ratio_to_floor']:.2f}x the floor")
            for c in r["cases"]]
    rows += [("-", ""), ("outbox rows written", f"{r['outbox_rows']:,} of {r['expected_rows']:,} expected"),
             ("delivery tasks queued", f"{r['tasks_queued']:,}"),
             ("per round", f"{r['signatures_per_round']} signatures, {r['rounds_per_case']} rounds a case"),
             ("database", r["database"]), ("redis", r["redis"])]
    return table(rows, "Webhook emission on signing (signing.sign + commit, one process)")


def main(argv=None) -> int:
    return run_bench("webhook_emit", parse_args(argv), run, render,
                     ok=lambda r: r["outbox_rows"] == r["expected_rows"] == r["tasks_queued"])


if __name__ == "__main__":
    sys.exit(main())
