"""How long an `alerts` command takes to start, as a ratio to the interpreter's own start.

Each command is run `--runs` times in turn with the floors (interleaved, so load on the
machine falls on all alike); the table gives the median CPU time (user + system) of each and
its ratio to the floor `python -c pass` measured in the same run, and wall times beside. A second reference,
`import flask, sqlalchemy`, is what any command of a Flask + SQLAlchemy app must pay.

    .venv/bin/python bench/cli_startup.py --runs 15
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
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


def main() -> None:
    """Measure every case `--runs` times, interleaved; print the table (and --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="for the commands (without one each would start the embedded Redis)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as tmp:
        env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp}/bench.db",
               "REDIS_URL": args.redis_url}
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
    print(f"{'command':<38} {'CPU s':>7} {'x floor':>8} {'wall s':>8} {'best wall':>10}")
    for name in CASES:
        cpu, wall = statistics.median(cpus[name]), statistics.median(walls[name])
        rows.append({"command": name, "median_cpu_s": round(cpu, 3), "ratio_to_floor": round(cpu / floor, 1),
                     "median_wall_s": round(wall, 3), "best_wall_s": round(min(walls[name]), 3)})
        print(f"{name:<38} {cpu:>7.3f} {cpu / floor:>8.1f} {wall:>8.3f} {min(walls[name]):>10.3f}")
    print(f"({args.runs} runs each, interleaved; medians; floor = CPU time of `python -c pass`, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    if args.json:
        args.json.write_text(json.dumps({"runs": args.runs, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
