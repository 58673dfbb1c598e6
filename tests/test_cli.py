"""The `alerts` command line as operators and scripts use it."""

from __future__ import annotations

import json

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Action
from tests.helpers import add_confirmed


def test_seed_actions_is_idempotent(app, ctx):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-actions"])
    assert first.exit_code == 0 and "7 actions added" in first.output
    again = runner.invoke(args=["seed-actions"])
    assert "0 actions added, 7 already present" in again.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Action)) == 7


def test_alert_create_send_wait_and_status(app, ctx, smtp, celery_worker):
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-actions"])
    add_confirmed(30)
    created = runner.invoke(
        args=["alert", "create", "--subject", "Close Rikers now", "--intro", "Hello **friends**",
              "--action", "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"]
    )
    assert created.exit_code == 0, created.output
    alert_id = int(created.stdout.strip())  # the id alone on stdout
    sent = runner.invoke(args=["alert", "send", str(alert_id), "--wait"])
    assert sent.exit_code == 0, sent.output
    assert sent.stdout == ""  # progress and summary go to stderr
    assert "30/30 (100.0%)" in sent.stderr and "30 sent, 0 failed" in sent.stderr
    status = runner.invoke(args=["alert", "status", str(alert_id), "--json"])
    data = json.loads(status.stdout)
    assert {"state", "total", "queued", "sent", "failed", "skipped"} <= set(data)
    assert (data["state"], data["total"], data["sent"], data["queued"]) == ("sent", 30, 30, 0)
    assert len(smtp.handler.wait_for(30, timeout=5)) == 30
    html = smtp.messages[0].message.get_body(("html",)).get_content()
    assert "Rikers" in html and "Detention is No Place" not in html


def test_cli_errors_name_the_problem(app, ctx):
    runner = app.test_cli_runner()
    bad_slug = runner.invoke(args=["alert", "create", "--subject", "S", "--intro", "x",
                                   "--action", "no-such-action"])
    assert bad_slug.exit_code == 2 and "no action with slug no-such-action" in bad_slug.output
    empty = runner.invoke(args=["alert", "create", "--subject", "  ", "--intro", "x"])
    assert empty.exit_code == 2 and "subject is required" in empty.output
    missing = runner.invoke(args=["alert", "send", "999"])
    assert missing.exit_code == 1 and "there is no alert 999" in missing.output
    runner.invoke(args=["seed-actions"])
    alert_id = runner.invoke(args=["alert", "create", "--subject", "S", "--intro", "x"]).stdout.strip()
    pause = runner.invoke(args=["alert", "pause", alert_id])
    assert pause.exit_code == 1 and "only a sending alert can be paused" in pause.output
    status = runner.invoke(args=["alert", "status", alert_id, "--json"])
    assert json.loads(status.stdout)["state"] == "draft"
