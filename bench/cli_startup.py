"""How long an `alerts` command takes to start, as a ratio to the interpreter's own start.

Each command is run `--runs` times in turn with the floors (interleaved, so load on the
machine falls on all alike); the table gives the median CPU time (user + system) of each and
its ratio to the floor `python -c pass` measured in the same run, and wall times beside. A second reference,
`import flask, sqlalchemy`, is what any command of a Flask + SQLAlchemy app must pay.

    .venv/bin/python -m bench.cli_startup --runs 15
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.lib import PROJECT_ROOT as ROOT
from bench.lib.harness import run_bench

ALERTS = str(Path(sys.executable).with_name("alerts"))

CASES = {
    "floor: python -c pass": [sys.executable, "-c", "pass"],
    "reference: import flask, sqlalchemy": [sys.executable, "-c", "import flask, sqlalchemy"],
    "alerts --help": [ALERTS, "--help"],
    "alerts alert status 1": [ALERTS, "alert", "status", "1"],
    "alerts subscribers export": [ALERTS, "subscribers", "export"],
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; CPU time is what other load on the machine
    disturbs least, so the ratios are taken from it."""
    cpu, started = _children_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=False, timeout=120)
    return time.perf_counter() - started, _children_cpu() - cpu


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--json", dest="json_path", type=Path, help="also write the figures here")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="for the commands (without one each would start the embedded Redis)")
    return parser.parse_args(argv)


def run(args, workdir: Path) -> dict:
    """Measure every case `--runs` times, interleaved."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{workdir}/bench.db", "REDIS_URL": args.redis_url}
    subprocess.run([ALERTS, "db", "upgrade"], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls: dict[str, list[float]] = {name: [] for name in CASES}
    cpus: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):
        for name, argv in CASES.items():
            wall, cpu = run_once(argv, env)
            walls[name].append(wall)
            cpus[name].append(cpu)
    floor = statistics.median(cpus["floor: python -c pass"])
    rows = []
    for name in CASES:
        cpu, wall = statistics.median(cpus[name]), statistics.median(walls[name])
        rows.append({"command": name, "median_cpu_s": round(cpu, 3), "ratio_to_floor": round(cpu / floor, 1),
                     "median_wall_s": round(wall, 3), "best_wall_s": round(min(walls[name]), 3)})
    return {"runs": args.runs, "rows": rows, "load_average": round(os.getloadavg()[0], 1),
            "cores": os.cpu_count()}


def render(r: dict) -> str:
    lines = [f"{'command':<38} {'CPU s':>7} {'x floor':>8} {'wall s':>8} {'best wall':>10}"]
    for row in r["rows"]:
        lines.append(f"{row['command']:<38} {row['median_cpu_s']:>7.3f} {row['ratio_to_floor']:>8.1f} "
                     f"{row['median_wall_s']:>8.3f} {row['best_wall_s']:>10.3f}")
    lines.append(f"({r['runs']} runs each, interleaved; medians; floor = CPU time of `python -c pass`, "
                 f"load average {r['load_average']:.1f} on {r['cores']} cores)")
    return "\n".join(lines)


def main(argv=None) -> int:
    return run_bench("cli_startup", parse_args(argv), run, render)


if __name__ == "__main__":
    sys.exit(main())
