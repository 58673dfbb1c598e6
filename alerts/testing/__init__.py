"""Parts that tests and benchmarks start on loopback: a Redis of their own, a fresh schema, ports.

Development and test support only: production code never imports it (an import-linter contract
in pyproject.toml says so).
"""
