"""The URL map is a contract with templates, emails already sent and tests: it changes only on purpose."""

from __future__ import annotations

import os
from pathlib import Path

from jinja2.defaults import DEFAULT_FILTERS

SNAPSHOT = Path(__file__).parent / "snapshots" / "url_map.txt"
MARKS = ("records_on_get", "allows_large_upload")


def _url_map(app) -> str:
    """One line per route: rule, methods, endpoint and the marks its view carries; then the filters."""
    lines = []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        view = app.view_functions[rule.endpoint]
        marks = [mark for mark in MARKS if getattr(view, mark, False)]
        methods = ",".join(sorted(rule.methods or ()))
        lines.append(" ".join([rule.rule, methods, rule.endpoint, *marks]))
    filters = sorted(set(app.jinja_env.filters) - set(DEFAULT_FILTERS))
    lines.append("filters: " + " ".join(filters))
    return "\n".join(lines) + "\n"


def test_url_map_matches_its_snapshot(app):
    actual = _url_map(app)
    if os.environ.get("UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(actual)
    assert actual == SNAPSHOT.read_text(), "the URL map changed; rerun with UPDATE_SNAPSHOTS=1 if intended"
