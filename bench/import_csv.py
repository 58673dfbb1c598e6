"""Subscriber import benchmark: N CSV rows through alerts.importing, rows per second.

    python -m bench.import_csv [--rows 100000] [--database-url URL] [--consent documented] [--fields]

Writes a CSV of N rows (about 1% invalid addresses and 2% repeats of an earlier row, in
mixed case, with a name column beside the email column) and imports it into a fresh database:
a new SQLite file in a temporary directory, or the PostgreSQL (or other) database given by
--database-url, which the bench wipes (its name must contain "bench"). It times three things
on the same data: the import into the empty list, the same file again (every address now
known: the "already confirmed" path), and an export of everything to CSV.

With --consent confirm-first the confirmation tasks are queued on a throwaway Redis queue
(REDIS_URL, or redis://127.0.0.1:6379/15) that nobody consumes and that is deleted afterwards,
so the figure includes queueing one task per row but no mail is sent.

With --fields each row also has a first and last name, a ZIP code and a custom choice field
(defined first), all mapped and checked; the second import then finds them all given already.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.lib import BenchError
from bench.lib.database import bench_database_url, fresh_schema
from bench.lib.harness import run_bench


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Subscriber import benchmark (see the module docstring).")
    p.add_argument("--rows", type=int, default=100_000, help="CSV data rows to generate (default 100000)")
    p.add_argument("--invalid", type=float, default=0.01, help="share of invalid addresses (0.01)")
    p.add_argument("--duplicates", type=float, default=0.02, help="share of repeated addresses (0.02)")
    p.add_argument("--consent", choices=("documented", "confirm-first"), default="documented")
    p.add_argument("--database-url", default=None,
                   help="a database the bench may wipe (name must contain 'bench'); default: fresh SQLite")
    p.add_argument("--force-drop", action="store_true", help="allow a --database-url without 'bench'")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15")
    p.add_argument("--chunk-size", type=int, default=None, help="rows per transaction (default: the app's)")
    p.add_argument("--fields", action="store_true",
                   help="also First Name, Last Name, ZIP and a custom choice field in every row")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    return p.parse_args(argv)


def generate(path: Path, rows: int, invalid: float, duplicates: float, seed: int,
             fields: bool = False) -> dict:
    """The CSV file; returns how many rows of each kind it holds."""
    rnd = random.Random(seed)
    emitted: list[str] = []
    counts = {"valid_unique": 0, "invalid": 0, "duplicate": 0}
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("Name,E-mail Address,Signed up" + (",First Name,Last Name,ZIP,District" if fields else "")
                  + "\r\n")
        for i in range(rows):
            roll = rnd.random()
            if roll < invalid:
                email = rnd.choice([f"person{i}@", f"person{i}.example.org", f"person {i}@example.org", ""])
                counts["invalid"] += 1
            elif roll < invalid + duplicates and emitted:
                local, _, domain = rnd.choice(emitted).partition("@")
                email = f"{local}@{domain.upper()}"  # a domain's case does not make a new address
                counts["duplicate"] += 1
            else:
                email = f"person{i}@{rnd.choice(['example.org', 'Example.NET', 'mail.example.com'])}"
                emitted.append(email)
                counts["valid_unique"] += 1
            extra = f",Ana{i},Díaz,{10000 + i % 90000:05d},district {1 + i % 3}" if fields else ""
            out.write(f"Person {i},{email},2026-0{1 + i % 9}-1{i % 10}{extra}\r\n")
    return counts


def run(args, workdir: Path) -> dict:
    url = bench_database_url(args, workdir)

    import logging

    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alerts import create_app, redis_conn
    from alerts.extensions import db
    from alerts.models import ConsentRecord, Subscriber
    from alerts.subscribers import exporting, importing

    queue = f"bench-import-{uuid.uuid4().hex[:8]}"
    app = create_app({
        "SECRET_KEY": "bench", "SECRET_KEYS": ["bench"],
        "SQLALCHEMY_DATABASE_URI": url,
        "REDIS_URL": args.redis_url,
        "CELERY_TASK_QUEUE": queue,
    })
    backend = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name()
    fresh_schema(app)
    csv_path = workdir / "subscribers.csv"
    t0 = time.perf_counter()
    kinds = generate(csv_path, args.rows, args.invalid, args.duplicates, args.seed, args.fields)
    if args.fields:
        from alerts.subscribers import fields

        with app.app_context():
            fields.define("district", "District", "choice", ["District 1", "District 2", "District 3"])
            db.session.commit()
    gen_s = time.perf_counter() - t0
    size_mb = csv_path.stat().st_size / 1e6
    print(f"{args.rows:,} rows ({size_mb:.1f} MB) generated in {gen_s:.1f}s: {kinds['valid_unique']:,} "
          f"unique valid, {kinds['invalid']:,} invalid, {kinds['duplicate']:,} repeats; "
          f"database: {backend}; consent: {args.consent}", file=sys.stderr)

    options = {"consent": args.consent, "source": "bench import"}
    if args.chunk_size:
        options["chunk_size"] = args.chunk_size
    figures: dict[str, object] = {"rows": args.rows, "backend": backend, "consent": args.consent,
                                  "fields": args.fields, "kinds": kinds}
    try:
        with app.app_context():
            for label in ("first", "again"):
                with open(csv_path, "rb") as fh:
                    t0 = time.perf_counter()
                    report = importing.import_file(fh, **options)
                    seconds = time.perf_counter() - t0
                figures[label] = {
                    "seconds": round(seconds, 2),
                    "rows_per_second": round(args.rows / seconds),
                    "created": report.created,
                    "queued": report.queued,
                    "reasons": dict(report.reasons),
                }
            subscribers = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
            consents = db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord))
            if not subscribers == consents == kinds["valid_unique"]:
                raise BenchError(f"{subscribers:,} subscribers and {consents:,} consent records for "
                                 f"{kinds['valid_unique']:,} unique valid addresses")

            t0 = time.perf_counter()
            out = io.StringIO()
            for piece in exporting.export_csv():
                out.write(piece)
            seconds = time.perf_counter() - t0
            exported = out.getvalue().count("\n") - 1
            if exported != subscribers:
                raise BenchError(f"{exported:,} rows exported of {subscribers:,} subscribers")
            figures["export"] = {"rows": exported, "seconds": round(seconds, 2),
                                 "rows_per_second": round(exported / seconds)}
    finally:
        if args.consent == "confirm-first":  # the queue and kombu's records of it
            r = redis_conn.client(app.config["REDIS_URL"])
            r.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
        with app.app_context():
            db.engine.dispose()
    return figures


def render(r: dict) -> str:
    lines = []
    for label in ("first", "again"):
        f = r[label]
        lines.append(f"import ({label}): {r['rows']:,} rows in {f['seconds']:.2f}s = "
                     f"{f['rows_per_second']:,.0f} rows/s; {f['created']:,} created, "
                     f"{f['queued']:,} confirmations queued, {f['reasons']}")
    e = r["export"]
    lines.append(f"export: {e['rows']:,} rows in {e['seconds']:.2f}s = {e['rows_per_second']:,.0f} rows/s")
    return "\n".join(lines)


def main(argv=None) -> int:
    return run_bench("import_csv", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
