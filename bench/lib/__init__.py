"""What the benchmarks share, one concern a module; here only the error every bench reports and its paths."""

from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = PROJECT_ROOT / "bench"
PYTHON = sys.executable


class BenchError(RuntimeError):
    """A bench that cannot go on: printed as one line (and log tails) by `harness.run_bench`."""
