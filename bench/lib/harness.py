"""Every bench's frame: its options, its table, and its end (table, --json, exit code)."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from bench.lib import BenchError
from bench.lib.database import database_label
from bench.lib.processes import cpu_count, exit_cleanly_on_sigterm


def apply_settings(settings: dict[str, str], overrides: list[str]) -> dict[str, str]:
    """`--set NAME=VALUE` items on top of the bench's settings, exported for the app and
    every process the bench starts; returns the environment for those processes."""
    for item in overrides:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BenchError(f"--set wants NAME=VALUE, got {item!r}")
        settings[name] = value
    os.environ.update(settings)
    return {**os.environ, **settings}


def web_app_env(args, database_url: str, redis_url: str, queue: str, **extra: str) -> dict[str, str]:
    """The app's settings in a web bench (a new secret, its own Celery queue, no worker and so
    nothing mailed) with `extra` and `--set` on top, exported; returns the processes' environment."""
    settings = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": secrets.token_urlsafe(32),
        "CELERY_TASK_QUEUE": queue,
        "BASE_URL": "https://alerts.example.org",
        "SMTP_URL": "smtp://127.0.0.1:9",  # nothing listens: no worker runs during a web bench
        **extra,
    }
    return apply_settings(settings, args.settings)


def table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * (vwidth + 2) + "+"
    out = [title, line]
    for key, value in rows:
        if key == "-":
            out.append(line)
        else:
            out.append(f"| {key:<{width}} | {value:<{vwidth}} |")
    out.append(line)
    return "\n".join(out)


def run_bench(name: str, args, run, render, *, logs: tuple[str, ...] = (), keep: bool = False,
              ok=lambda result: True) -> int:
    """Every bench's end: run in a scratch directory, print the table, write --json, exit code.

    On a BenchError the tails of `logs` (glob patterns in the scratch directory) are printed.
    SIGTERM unwinds like Ctrl-C, so the finally-blocks stop every server the bench started.
    """
    import json
    import tempfile

    exit_cleanly_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix=f"alerts-bench-{name}-"))
    try:
        result = run(args, workdir)
    except BenchError as exc:
        print(f"bench.{name}: {exc}", file=sys.stderr)
        for pattern in logs:
            for log in sorted(workdir.glob(pattern)):
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                print(f"--- {log.name} (last lines)\n{tail}", file=sys.stderr)
        return 2
    finally:
        if keep:
            print(f"[bench] kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(render(result))
    if getattr(args, "json_path", None):
        Path(args.json_path).write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok(result) else 1


def web_bench_args(description: str, count: str, noun: str, default: int, warmup: int = 200,
                   floor: bool = True):
    """The options every web benchmark shares (gunicorn, database, Redis, load, output)."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument(f"--{count}", type=int, default=default, help=f"{noun} in the measured phase")
    p.add_argument("--warmup", type=int, default=warmup, help=f"{noun} before measuring (also checked)")
    p.add_argument("--clients", type=int, default=8, help="concurrent visitors (connections)")
    p.add_argument("--rate", type=float, default=None,
                   help=f"open loop: {noun} per second (latency counted from the scheduled time)")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    p.add_argument("--threads", type=int, default=1, help="threads per gunicorn worker (gthread)")
    p.add_argument("--database-url", default=None,
                   help="a database the bench may wipe (name must contain 'bench'); default: SQLite")
    p.add_argument("--force-drop", action="store_true")
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or None)
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                   help="an environment setting for the app")
    if floor:
        p.add_argument("--floor-requests", type=int, default=None,
                       help=f"requests measured on the floor (default: as many as --{count})")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds one request may take")
    p.add_argument("--json", dest="json_path", default=None)
    return p


def web_run_figures(args, database_url: str, redis, server) -> dict:
    """The settings every web bench's figures start with: what `web_bench_args` took, the
    database, the Redis, the CPUs and the server (a `GunicornSettings`)."""
    return {
        "warmup": args.warmup,
        "clients": args.clients,
        "mode": f"open loop at {args.rate:g}/s" if args.rate else "closed loop",
        "database": database_label(database_url),
        "redis": redis.description,
        "cpus": cpu_count(),
        "server": server.label,
    }
