"""The floor for web benchmarks: what a bare Flask handler does under the same server and load.

    python -m bench.floor --requests 3000 [--clients 8] [--rate R] [--kind post|redirect]

A web figure says little on its own (machines of one kind have measured up to 4x apart), so a
web benchmark measures this floor in the same run and quotes its figures as ratios to it. The
floor is this module's `app`: a Flask app with

- `GET /`: a tiny form page with a session-like cookie and a CSRF-like hidden token, in the
  markup the app's forms use, so the load client fetches it the same way;
- `POST /<any path>`: reads the form (one field is used), answers a tiny 200 page;
- `GET /r/<token>`: a 302 to a fixed address (the floor of a link-redirect benchmark);
- `GET /healthz`: 200.

`measure()` serves it with gunicorn under exactly the app's `GunicornSettings` (workers,
worker class, threads, backlog, timeout) and drives it with the same asyncio client
(`Visitor`, `drive`): for POST the same path and the same form fields as the
app's requests. `compare()` turns an app's figures and the floor's into the ratios the project
states its goals in (throughput at least 0.5x the floor's, p99 at most 3x, nothing lost).
Used by bench/signup.py; meant for any benchmark of a web endpoint.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

from flask import Flask, make_response, redirect, request

from bench.lib import BenchError
from bench.lib.cpu import other_load_text
from bench.lib.harness import run_bench, table
from bench.lib.load import Run, warm_then_measure
from bench.lib.processes import cpu_count
from bench.lib.web import Gunicorn, GunicornSettings, Visitor

GOAL_THROUGHPUT_RATIO = 0.5  # app/floor requests per second, at least
GOAL_P99_RATIO = 3.0  # app/floor p99, at most
MARK = b"Thank you"  # words of the floor's answer page (checked like the app's)

# -- the bare app ------------------------------------------------------------------------------

app = Flask("floor")

_FORM = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Floor</title></head><body>'
    '<form method="post" action="/subscribe">'
    '<input id="csrf_token" name="csrf_token" type="hidden" value="{token}">'
    '<input name="email" type="email"><input name="website" type="text" value="">'
    '<button type="submit">Sign up</button></form></body></html>'
)
_DONE = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Floor</title></head><body>' \
        "<p>Thank you ({n} characters).</p></body></html>"


@app.get("/")
def form_page():
    token = secrets.token_urlsafe(32)
    response = make_response(_FORM.format(token=token))
    response.set_cookie("session", token, httponly=True, samesite="Lax")
    return response


@app.post("/<path:_anything>")
def post(_anything: str):
    value = request.form.get("email", "")
    return _DONE.format(n=len(value))


@app.get("/r/<token>")
def follow(token: str):
    return redirect("https://example.org/", 302)


@app.get("/healthz")
def healthz():
    return "ok\n"


# -- measuring it ------------------------------------------------------------------------------


def measure(settings: GunicornSettings, workdir: Path, env: dict, *, requests: int, warmup: int,
            clients: int, rate: float | None, timeout: float = 10.0, kind: str = "post",
            path: str = "/subscribe", fields: Callable[[int], dict] | None = None) -> dict:
    """The floor served by gunicorn with `settings`, driven like the app: `warmup` requests,
    then `requests` measured. kind "post": each visitor GETs / once for its cookie and token,
    then POSTs `fields(i)` (default: an address and an empty honeypot) to `path`. kind
    "redirect": GET /r/<token>, expecting 302, no form first."""
    if kind not in ("post", "redirect"):
        raise BenchError(f"unknown floor kind {kind!r}")
    if fields is None:
        def fields(i):
            return {"email": f"floor-{i:07d}@example.net", "website": ""}
    server = Gunicorn("bench.floor:app", settings, env, workdir / "floor-gunicorn.log")
    try:
        if kind == "post":
            ok, form_path = (200,), "/"

            async def action(v: Visitor, i: int) -> int:
                return await v.post_form(path, fields(i), MARK)
        else:
            ok, form_path = (302,), None

            async def action(v: Visitor, i: int) -> int:
                status, _ = await v.request("GET", f"/r/{secrets.token_urlsafe(24)}")
                return status

        load = warm_then_measure(server.port, clients, timeout, list(range(warmup)),
                                 list(range(warmup, warmup + requests)), action, rate, ok, form_path,
                                 server.proc.pid)
    finally:
        server.stop()
    return {
        "kind": kind,
        "what": ("bare Flask: GET / (hidden token, cookie) once per client, then POST "
                 f"{path} (reads a form field, 200 page)") if kind == "post"
                else "bare Flask: GET /r/<token> (302)",
        "server": settings.label,
        "requests": requests,
        "warmup": warmup,
        "clients": clients,
        "mode": f"open loop at {rate:g}/s" if rate else "closed loop",
        **load.figures("request"),
        "accepted": len(load.out.accepted),
    }


def compare(app_rps: float, app_p99: float | None, floor: dict, lost: int, errors: int,
            app_server_cpu_ms: float | None = None) -> dict:
    """The app's figures as ratios to the floor's, and whether the project's goal is reached:
    throughput >= 0.5x the floor's, p99 <= 3x the floor's, nothing lost, no errors.

    Also (no goal) the server CPU per request as a ratio: on a machine shared with other load,
    throughput and p99 move with the competition, CPU per request much less."""
    floor_rps = floor["requests_per_second"]
    floor_p99 = floor["latency_ms"]["p99"]
    throughput = app_rps / floor_rps if floor_rps else None
    p99 = app_p99 / floor_p99 if app_p99 is not None and floor_p99 else None
    checks = {
        "throughput_met": throughput is not None and throughput >= GOAL_THROUGHPUT_RATIO,
        "p99_met": p99 is not None and p99 <= GOAL_P99_RATIO,
        "nothing_lost": lost == 0 and errors == 0 and floor["errors"] == 0,
    }
    floor_cpu = floor.get("server_cpu_ms_per_request")
    cpu = app_server_cpu_ms / floor_cpu if app_server_cpu_ms is not None and floor_cpu else None
    return {
        "throughput_ratio": round(throughput, 3) if throughput is not None else None,
        "p99_ratio": round(p99, 2) if p99 is not None else None,
        "server_cpu_ratio": round(cpu, 2) if cpu is not None else None,
        "goal": {"throughput_ratio_at_least": GOAL_THROUGHPUT_RATIO, "p99_ratio_at_most": GOAL_P99_RATIO,
                 "lost": 0},
        **checks,
        "met": all(checks.values()),
    }


def compare_load(load: Run, floor: dict, lost: int) -> dict:
    """`compare` for a web bench's `Run`: its rate, p99, errors and server CPU against the floor's."""
    return compare(load.requests_per_second, load.latency["p99"], floor, lost, load.errors,
                   app_server_cpu_ms=load.server_cpu_ms)


def table_rows(floor: dict, ratios: dict, unit: str = "requests") -> list[tuple[str, str]]:
    """Rows for a benchmark's table: the floor's figures, the ratios, the goal's verdict."""
    ok = {True: "met", False: "NOT met"}
    lat = floor["latency_ms"]
    missing = [name for name, key in (("throughput", "throughput_met"), ("p99", "p99_met"),
                                      ("nothing lost", "nothing_lost")) if not ratios[key]]
    verdict = "reached" if ratios["met"] else "NOT reached (" + ", ".join(missing) + " short)"
    return [
        ("floor", floor["what"]),
        ("floor requests per second", f"{floor['requests_per_second']:,.1f} ({floor['requests']:,} requests, "
                                      f"{floor['errors']} errors)"),
        ("floor latency p50 / p99", f"{lat['p50']} ms / {lat['p99']} ms"),
        ("floor server CPU per request", f"{floor['server_cpu_ms_per_request']:.3f} ms (gunicorn processes, "
                                         "user+sys)"),
        ("floor: other load", other_load_text(floor["other_load"])),
        (f"ratio throughput ({unit}/floor)",
         f"{ratios['throughput_ratio']}x (goal >= {GOAL_THROUGHPUT_RATIO}x: {ok[ratios['throughput_met']]})"),
        ("ratio p99 (app/floor)", f"{ratios['p99_ratio']}x (goal <= {GOAL_P99_RATIO:g}x: "
                                  f"{ok[ratios['p99_met']]})"),
        ("goal (throughput, p99, lost 0)", verdict),
        ("ratio server CPU (app/floor)", f"{ratios['server_cpu_ratio']}x per request (no goal; steadier "
                                         "than throughput when other load shares the machine)"),
    ]


# -- on its own ---------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="The web floor on its own (see the module docstring).")
    p.add_argument("--requests", type=int, default=3000)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rate", type=float, default=None)
    p.add_argument("--kind", choices=("post", "redirect"), default="post")
    p.add_argument("--gunicorn-workers", type=int, default=4)
    p.add_argument("--worker-class", default="sync", choices=("sync", "gthread"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", dest="json_path", default=None)
    return p.parse_args(argv)


def run(args, workdir: Path) -> dict:
    settings = GunicornSettings(args.gunicorn_workers, args.worker_class, args.threads)
    return measure(settings, workdir, dict(os.environ), requests=args.requests,
                   warmup=args.warmup, clients=args.clients, rate=args.rate, kind=args.kind)


def render(r: dict) -> str:
    lat = r["latency_ms"]
    return table([
        ("floor", r["what"]),
        ("server", f"{r['server']} on 127.0.0.1, {cpu_count()} CPUs"),
        ("load", f"{r['clients']} asyncio clients, {r['mode']}"),
        ("-", ""),
        ("requests per second", f"{r['requests_per_second']:,.1f}"),
        ("latency p50 / p90 / p99", f"{lat['p50']} ms / {lat['p90']} ms / {lat['p99']} ms"),
        ("server CPU per request", f"{r['server_cpu_ms_per_request']:.3f} ms (gunicorn processes, user+sys)"),
        ("HTTP statuses", ", ".join(f"{k}: {v:,}" for k, v in r["statuses"].items()) or "-"),
        ("errors", str(r["errors"])),
        ("machine CPU", f"{r['machine_cpu_busy_percent']}% busy"),
        ("other load on the machine", other_load_text(r["other_load"])),
    ], f"Web floor: {r['requests']:,} requests")


def main(argv=None) -> int:
    return run_bench("floor", parse_args(argv), run, render, logs=("floor-gunicorn.log",),
                     ok=lambda r: r["errors"] == 0 and r["accepted"] == r["requests"])


if __name__ == "__main__":
    sys.exit(main())
