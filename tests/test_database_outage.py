"""The database down or unreachable: pages answer 503 with a page saying so (status.json in JSON),
never Werkzeug's bare 500, and the command line prints one line naming the database."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from alerts import create_app
from alerts.extensions import limiter
from alerts.testing.mailcatcher import free_port
from tests.processes import ROOT

PASSWORD = "not-to-be-shown"


def _dead_url() -> str:
    """A PostgreSQL address on which nothing listens (connection refused)."""
    return f"postgresql+psycopg://alerts:{PASSWORD}@127.0.0.1:{free_port()}/alerts"


@pytest.fixture
def dead_app(app):
    """The same app (keys, Redis, mail) pointed at a database that is not there."""
    other = create_app({
        **{k: app.config[k] for k in ("SECRET_KEY", "SECRET_KEYS", "REDIS_URL", "SMTP_URL", "BASE_URL",
                                      "ORG_NAME", "ORG_POSTAL_ADDRESS", "CELERY_TASK_QUEUE",
                                      "RATELIMIT_KEY_PREFIX")},
        "TESTING": True, "SQLALCHEMY_DATABASE_URI": _dead_url(),
    })
    yield other
    # The extensions are the process's: bound to the suite's app again.
    app.extensions["celery"].set_default()
    app.extensions["celery"].set_current()
    limiter.init_app(app)


def _as_staff_of(dead_app, staff_client):
    """A browser holding a staff session made while the database answered."""
    cookie = staff_client.get_cookie("session")
    browser = dead_app.test_client()
    browser.set_cookie("session", cookie.value, domain=cookie.domain, path=cookie.path)
    return browser


@pytest.mark.commits
def test_staff_and_public_pages_say_the_database_is_not_answering(dead_app, staff_client):
    browser = _as_staff_of(dead_app, staff_client)
    for path in ("/staff/", "/staff/alerts", "/"):
        page = browser.get(path)
        html = page.get_data(as_text=True)
        assert page.status_code == 503, (path, html[:300])
        assert page.content_type.startswith("text/html")
        assert "The database is not answering" in html and "Error 503" in html
        assert "Traceback" not in html and PASSWORD not in html
        assert page.headers["Retry-After"] == "30"


@pytest.mark.commits
def test_status_json_answers_503_naming_the_database(dead_app, staff_client):
    browser = _as_staff_of(dead_app, staff_client)
    answer = browser.get("/staff/alerts/1/status.json", headers={"Accept": "application/json"})
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "The database is not answering.", "database": "down"}


@pytest.mark.commits
def test_healthz_names_the_database(dead_app):
    answer = dead_app.test_client().get("/healthz")
    assert answer.status_code == 503 and answer.get_json()["database"].startswith("down")


@pytest.mark.commits
def test_cli_prints_one_line_naming_the_database(dead_app):
    result = dead_app.test_cli_runner().invoke(args=["alert", "status", "1"])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: the database is not answering (postgresql+psycopg://alerts:***@127.0.0.1:")
    assert "Connection refused" in line and PASSWORD not in line


@pytest.mark.slow
def test_the_alerts_command_prints_one_line_naming_the_database(app):
    """The console script itself (`alerts alert status`), as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "COV_"))}
    env.update(DATABASE_URL=_dead_url(), REDIS_URL=app.config["REDIS_URL"], SECRET_KEY="k",
               SMTP_URL=app.config["SMTP_URL"])
    command = [sys.executable, "-c", "from alerts.cli import main; main()", "alert", "status", "1"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("Error: the database is not answering (postgresql+psycopg://alerts:***@")
    assert "Connection refused" in line and PASSWORD not in line


@pytest.mark.commits  # its app's own session must reach the dead database, not the test's transaction
def test_the_sweep_says_in_one_line_that_the_database_is_away(dead_app, caplog):
    from alerts import tasks

    with dead_app.app_context(), caplog.at_level("WARNING", logger="alerts.tasks"):
        assert tasks.sweep.run() == {"database": "down"}
    [record] = [r for r in caplog.records if r.name == "alerts.tasks"]
    assert record.getMessage().startswith("sweep skipped: the database is not answering (")
    assert record.exc_info is None and PASSWORD not in record.getMessage()
