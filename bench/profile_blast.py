"""Where a blast's time goes, per message: one process, no Celery, the real code.

    python -m bench.profile_blast --subscribers 5000 [--database-url URL] [--cprofile out.prof]

Seeds N subscribers like bench/blast.py, fixes the recipients with `blasts.start_blast`, then
(1) times each step of the per-recipient path on its own over the first rows (personalize,
MIME build, DKIM sign, SMTP to the sink over one kept connection), and (2) runs every batch
through `sending.send_batch` in this process, timed (and under cProfile with --cprofile), so
that what the steps do not explain (claims, outcome writes, per-batch set-up) shows as the
remainder. Prints a table of milliseconds per message.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import sys
import time
from pathlib import Path

from bench.blast import DKIM_DOMAIN, DKIM_SELECTOR, ORG, seed, write_dkim_key
from bench.lib import PROJECT_ROOT
from bench.lib.database import bench_database_url, database_label, fresh_schema
from bench.lib.harness import run_bench, table
from bench.lib.redis import BenchRedis
from bench.lib.sinks import Sink


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Per-message profile of the blast path (one process).")
    p.add_argument("--subscribers", type=int, default=5000)
    p.add_argument("--steps", type=int, default=2000, help="rows timed step by step")
    p.add_argument("--database-url", default=None)
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--sink", choices=("auto", "python", "postfix"), default="auto")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--cprofile", default=None, help="write the send_batch profile here (pstats)")
    p.add_argument("--top", type=int, default=25, help="functions to list from the profile")
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument("--personalize", action="store_true",
                   help="the alert greets by name (bench/blast.py --personalize's alert and readers)")
    return p.parse_args(argv)


def timed(fn, items) -> tuple[float, list]:
    out = []
    t0 = time.perf_counter()
    for item in items:
        out.append(fn(item))
    return time.perf_counter() - t0, out


def run(args, workdir: Path) -> dict:
    import sqlalchemy as sa

    database_url = bench_database_url(args, workdir, "profile.db")
    redis = BenchRedis.start(workdir, args.redis_url)
    sink = Sink(args.sink)
    try:
        key_path, _ = write_dkim_key(workdir)
        settings = {
            **ORG, "DATABASE_URL": database_url, "REDIS_URL": redis.url, "SMTP_URL": sink.url,
            "SECRET_KEY": secrets.token_urlsafe(32), "DKIM_DOMAIN": DKIM_DOMAIN,
            "DKIM_SELECTOR": DKIM_SELECTOR, "DKIM_PRIVATE_KEY_FILE": str(key_path),
            "CELERY_TASK_QUEUE": f"bench-profile-{secrets.token_hex(4)}",
        }
        for item in args.settings:
            name, _, value = item.partition("=")
            settings[name] = value
        os.environ.update(settings)

        from alerts import create_app
        from alerts.blasts import content, dispatch, progress, sending, state
        from alerts.extensions import db
        from alerts.mail import smtp as mailer
        from alerts.mail.mime import message_parts
        from alerts.mail.signed_ids import envelope_sender
        from alerts.models import Alert, Delivery, Subscriber

        app = create_app()
        app.config["BLAST_FILL_CHUNK"] = 10**9  # every recipient fixed at once: all batches are timed
        fresh_schema(app)
        alert_id = seed(app, args.subscribers, args.personalize)
        with app.app_context():
            total = state.start_blast(alert_id)
            db.session.commit()
            alert = db.session.get(Alert, alert_id)
            rows = db.session.execute(
                sa.select(Delivery.id, Delivery.subscriber_id, Subscriber.email, Subscriber.token_key,
                          Subscriber.first_name, Subscriber.postal_code)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.alert_id == alert_id).order_by(Delivery.id).limit(args.steps)
            ).all()
            t0 = time.perf_counter()
            factory = content.MessageFactory.for_alert(alert)
            factory_s = time.perf_counter() - t0
            factory.prepare(rows)  # the batch's names, when the alert greets by them
            n = len(rows)

            # (1) each step alone, over the same rows
            def personalize(row):
                return factory.fields(row.id, row.subscriber_id, row.email, token_key=row.token_key,
                                      person=factory._people.get(row.subscriber_id))

            t_pers, personal = timed(personalize, rows)

            def mime(fields):
                return message_parts(**fields)

            t_mime, raw = timed(mime, personal)
            t_sign, signed = timed(lambda m: factory.signer.sign_parts(*m, canonical_body=True), raw)
            t_build, _ = timed(lambda r: factory.build(r.id, r.subscriber_id, r.email, token_key=r.token_key),
                               rows)

            cfg = app.config
            sender = envelope_sender(cfg)
            before = sink.settle(0.1)
            pairs = list(zip(rows, signed, strict=True))

            def send_all() -> None:
                """The app's pipelined send: each message's data with the next one's envelope."""
                pipe = mailer.Pipeline(mailer.connect(cfg["SMTP_URL"], cfg["SMTP_TIMEOUT"]))
                for i, (row, data) in enumerate(pairs):
                    then = (sender, pairs[i + 1][0].email) if i + 1 < len(pairs) else None
                    pipe.send(sender, row.email, data, then)
                pipe.close()

            t0 = time.perf_counter()
            send_all()
            t_smtp = time.perf_counter() - t0
            sink.wait_for(before + n, 10)
            # the client's own CPU (the rest of t_smtp is waiting for the sink's replies)
            c0 = time.process_time()
            send_all()
            smtp_cpu = time.process_time() - c0
            db.session.remove()

            # (2) the whole path: every batch through send_batch, in this process; the first
            # half timed plainly, the second half under cProfile (which slows small calls)
            ranges = list(dispatch.batch_ranges(alert_id, cfg["BLAST_BATCH_SIZE"]))
            db.session.remove()
            half = max(1, len(ranges) // 2)
            before = sink.settle(0.1)
            c0, t0 = time.process_time(), time.perf_counter()
            for first, last in ranges[:half]:
                sending.send_batch(alert_id, first, last)
                db.session.remove()
            t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
            got = sink.wait_for(before + int(total * half / len(ranges)) - 1, 30) - before
            got = sink.settle(0.2) - before
            profiler = cProfile.Profile()
            profiler.enable()
            for first, last in ranges[half:]:
                sending.send_batch(alert_id, first, last)
                db.session.remove()
            profiler.disable()
            profiled = sink.wait_for(before + total, 30) - before - got
            status = progress.status(alert_id)
            db.session.remove()

        ms = lambda seconds, count: round(1000 * seconds / max(count, 1), 4)  # noqa: E731
        steps = {
            "personalize (token, unsubscribe URL, slot fill)": ms(t_pers, n),
            "MIME build (mail.mime.message_parts)": ms(t_mime, n),
            "DKIM sign (mail.dkim, RSA-2048 via OpenSSL)": ms(t_sign, n),
            "SMTP send, one kept pipelined connection (wall)": ms(t_smtp, n),
            "SMTP send, client CPU only": ms(smtp_cpu, n),
        }
        explained = ms(t_build + t_smtp, n)
        whole = ms(t_all, got)
        result = {
            "subscribers": args.subscribers,
            "database": database_label(database_url),
            "sink": sink.name,
            "rows_timed_by_step": n,
            "factory_setup_ms": round(1000 * factory_s, 2),
            "steps_ms_per_message": steps,
            "factory_build_ms_per_message": ms(t_build, n),
            "send_batch": {
                "batches": len(ranges), "timed_batches": half, "messages_timed": got,
                "sent": status["sent"],
                "wall_ms_per_message": whole, "cpu_ms_per_message": ms(c_all, got),
                "messages_per_second_one_process": round(got / t_all, 1),
                "remainder_ms_per_message": round(whole - explained, 4),
            },
        }
        stats = pstats.Stats(profiler)
        if args.cprofile:
            stats.dump_stats(args.cprofile)
        result["top_functions"] = top_functions(stats, args.top, max(profiled, 1))
        return result
    finally:
        sink.stop()
        redis.stop()


def top_functions(stats: pstats.Stats, top: int, messages: int) -> list[dict]:
    rows = []
    for (filename, line, name), (_cc, calls, tottime, cumtime, _callers) in stats.stats.items():
        short = filename.split("site-packages/")[-1].replace(str(PROJECT_ROOT) + "/", "")
        rows.append({"function": f"{short}:{line}({name})", "calls": calls,
                     "self_ms_per_message": round(1000 * tottime / max(messages, 1), 4),
                     "cum_ms_per_message": round(1000 * cumtime / max(messages, 1), 4)})
    rows.sort(key=lambda r: -r["self_ms_per_message"])
    return rows[:top]


def render(r: dict) -> str:
    rows = [("subscribers", f"{r['subscribers']:,} ({r['database']}, sink: {r['sink']})"),
            ("rows timed step by step", f"{r['rows_timed_by_step']:,}"), ("-", "")]
    rows += [(k, f"{v:.4f} ms") for k, v in r["steps_ms_per_message"].items()]
    sb = r["send_batch"]
    rows += [
        ("MessageFactory.build (all of the above but SMTP)", f"{r['factory_build_ms_per_message']:.4f} ms"),
        ("-", ""),
        ("send_batch, whole path, one process (wall)",
         f"{sb['wall_ms_per_message']:.4f} ms ({sb['messages_per_second_one_process']:,.1f} msg/s)"),
        ("send_batch, CPU of this process", f"{sb['cpu_ms_per_message']:.4f} ms"),
        ("remainder: claims, outcome writes, batch set-up", f"{sb['remainder_ms_per_message']:.4f} ms"),
    ]
    out = table(rows, "Blast profile, milliseconds per message")
    out += "\n\nsend_batch under cProfile, by own time (ms per message; cProfile inflates small calls):\n"
    for f in r["top_functions"]:
        out += (f"  {f['self_ms_per_message']:8.4f}  {f['cum_ms_per_message']:8.4f}  {f['calls']:>9}"
                f"  {f['function']}\n")
    return out


def main(argv=None) -> int:
    return run_bench("profile_blast", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
