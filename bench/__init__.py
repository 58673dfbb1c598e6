"""The benchmarks: each module runs as `python -m bench.NAME` from the project root (see README.md)."""
