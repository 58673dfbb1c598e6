"""The first hour of a visitor, a staff member and an operator: the rough edges, held by tests."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.config import PLACEHOLDER_POSTAL_ADDRESS
from alerts.extensions import db
from alerts.models import Alert, ConsentRecord, Delivery, Subscriber, utcnow
from alerts.subscribers import privacy
from tests.helpers import (
    add_confirmed,
    blasts,
    confirm_token_for,
    csrf_token,
    make_alert,
    post,
    subscribe,
    unsubscribe_token_for,
)


def _add(app, email: str, status: str, nonce: str | None = None) -> int:
    with app.app_context():
        sub = Subscriber(email=email, status=status, confirm_nonce=nonce)
        db.session.add(sub)
        db.session.commit()
        return sub.id


def test_signup_redirects_after_post_and_echoes_the_address(app, client):
    resp = subscribe(client, "typo@exmaple.org", follow=False)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/subscribe")
    page = client.get("/subscribe")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Check your inbox" in text and "typo@exmaple.org" in text
    # Reloading the answer page is a GET: it posts nothing, so no second consent record.
    client.get("/subscribe")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 1


def test_answer_page_without_a_signup_goes_to_the_form(client):
    resp = client.get("/subscribe")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/#advocate")


def test_a_bad_address_answers_at_the_form(client):
    """The 400 page is addressed to the form's anchor and focuses the field (no scroll hunt)."""
    token = csrf_token(client)
    resp = client.post("/subscribe", data={"email": "a@b", "csrf_token": token})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'action="/subscribe#advocate"' in page
    assert 'id="email-error"' in page and "autofocus" in page
    # The browser checks the address too before posting: the form is not `novalidate`.
    assert "novalidate" not in page.split('id="advocate"', 1)[1].split("</form>", 1)[0]


def test_a_used_confirmation_link_says_so_on_get_and_changes_nothing(app, client):
    sub_id = _add(app, "used@example.org", "pending", nonce="n1")
    with app.app_context():
        token = confirm_token_for(sub_id, "n1")
    first = client.get(f"/confirm/{token}")
    assert "Confirm your subscription" in first.get_data(as_text=True)
    assert client.post(f"/confirm/{token}").status_code == 200
    again = client.get(f"/confirm/{token}")
    assert again.status_code == 200
    assert "already subscribed" in again.get_data(as_text=True)
    assert "<form" not in again.get_data(as_text=True).split("<main", 1)[1]
    with app.app_context():
        events = db.session.scalars(sa.select(ConsentRecord.event)).all()
    assert events == ["confirm"]  # the GET recorded nothing


def test_a_superseded_confirmation_link_says_used_on_get(app, client):
    sub_id = _add(app, "twice@example.org", "pending", nonce="new")
    with app.app_context():
        token = confirm_token_for(sub_id, "old")
    resp = client.get(f"/confirm/{token}")
    assert resp.status_code == 410 and "already been used" in resp.get_data(as_text=True)


def test_after_erasure_the_unsubscribe_link_says_the_data_is_gone(app, client):
    sub_id = _add(app, "erased@example.org", "confirmed")
    with app.app_context():
        token = unsubscribe_token_for(sub_id)
        privacy.erase_subscriber(sub_id, by="test")
        db.session.commit()
    for path in (f"/unsubscribe/{token}", f"/unsubscribe/{token}/data.json", f"/unsubscribe/{token}/erase"):
        resp = client.get(path)
        page = resp.get_data(as_text=True)
        assert resp.status_code == 404, path
        assert "Your data is gone" in page, path
        assert "Nothing to show" not in page
        assert "<button" not in page and "Download my data" not in page, path
    after_post = client.post(f"/unsubscribe/{token}").get_data(as_text=True)
    assert "Download my data" not in after_post and "Erase my data" not in after_post


def test_favicon(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/svg+xml"
    assert b"<svg" in resp.data
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)


# -- staff -----------------------------------------------------------------------------------


def test_alert_list_shows_sent_and_failed_counts(app, staff_client):
    with app.app_context():
        add_confirmed(3)
        alert_id = make_alert("Counted alert")
        blasts.start_blast(alert_id)
        rows = db.session.scalars(sa.select(Delivery).where(Delivery.alert_id == alert_id)
                                  .order_by(Delivery.id)).all()
        rows[0].status, rows[1].status = "sent", "failed"
        db.session.commit()
    page = staff_client.get("/staff/alerts").get_data(as_text=True)
    assert "<th class=\"num\">Sent</th>" in page and "<th class=\"num\">Failed</th>" in page
    row = page.split("Counted alert", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'<td class="num[^"]*">(.*?)</td>', row, re.S)
    assert [" ".join(re.sub(r"<[^>]+>", " ", c).split()) for c in cells] == ["1 of 3", "1"]


def test_a_paused_alert_shows_no_rate_and_no_time_left(app, staff_client):
    with app.app_context():
        add_confirmed(4)
        alert_id = make_alert()
        blasts.start_blast(alert_id)
        delivery = db.session.scalar(sa.select(Delivery).where(Delivery.alert_id == alert_id))
        delivery.status, delivery.sent_at = "sent", utcnow()
        db.session.commit()
        blasts.pause(alert_id)
        db.session.commit()
    status = staff_client.get(f"/staff/alerts/{alert_id}/status.json").get_json()
    assert (status["state"], status["sent"]) == ("paused", 1)
    assert status["rate_per_second"] == 0 and status["seconds_left"] is None
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert '<dd data-field="rate">—</dd>' in page
    assert '<dd data-field="seconds_left">paused</dd>' in page


def test_import_and_export_are_buttons(staff_client):
    page = staff_client.get("/staff/subscribers").get_data(as_text=True)
    assert re.search(r'<a class="button button-quiet" href="/staff/subscribers/import">Import CSV', page)
    assert re.search(r'<a class="button button-quiet" href="/staff/subscribers/export.csv"', page)


def test_test_send_lands_on_the_page_top_where_the_answer_is(app, staff_client):
    with app.app_context():
        alert_id = make_alert()
    page = f"/staff/alerts/{alert_id}"
    resp = post(staff_client, f"{page}/test", {"to": "me@example.org"}, page=page)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(page)  # no #anchor below it


def test_no_blast_while_the_postal_address_is_a_placeholder(app, staff_client, monkeypatch):
    monkeypatch.setitem(app.config, "ORG_POSTAL_ADDRESS", PLACEHOLDER_POSTAL_ADDRESS)
    with app.app_context():
        add_confirmed(2)
        alert_id = make_alert()
    page = f"/staff/alerts/{alert_id}"
    shown = staff_client.get(page).get_data(as_text=True)
    assert "Sending is blocked: ORG_POSTAL_ADDRESS is not set" in shown
    assert f"/staff/alerts/{alert_id}/send\"" not in shown  # no Send button to press
    assert "Sending is blocked" in staff_client.get(f"{page}/send").get_data(as_text=True)
    post(staff_client, f"{page}/send", {"confirm": "y"}, page=page)
    assert "ORG_POSTAL_ADDRESS is not set" in staff_client.get(page).get_data(as_text=True)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["alert", "send", str(alert_id)])
    assert result.exit_code == 1 and "ORG_POSTAL_ADDRESS is not set" in result.output
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "draft"
    # `alerts dev` allows the placeholder: mail stays in its own inbox.
    monkeypatch.setitem(app.config, "DEV_MODE", True)
    assert runner.invoke(args=["alert", "send", str(alert_id)]).exit_code == 0


def test_placeholders_are_plainly_dev(app):
    from alerts.config import load_config

    cfg = load_config(Path(app.instance_path))
    if "ORG_NAME" not in os.environ:
        assert "dev" in cfg["ORG_NAME"] and "(set ORG_NAME)" not in cfg["ORG_NAME"]
    if "ORG_POSTAL_ADDRESS" not in os.environ:
        assert "set ORG_POSTAL_ADDRESS" in cfg["ORG_POSTAL_ADDRESS"]


# -- the command line ------------------------------------------------------------------------


def test_an_unknown_slug_lists_the_valid_ones(app, ctx):
    runner = app.test_cli_runner()
    runner.invoke(args=["seed-actions"])
    bad = runner.invoke(args=["alert", "create", "--subject", "S", "--intro", "x", "--action", "nope"])
    assert bad.exit_code == 2
    assert "no action with slug nope" in bad.output
    assert "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island" in bad.output


def test_text_status_is_readable(app, ctx):
    runner = app.test_cli_runner()
    alert_id = make_alert()
    out = runner.invoke(args=["alert", "status", str(alert_id)]).output
    assert "None" not in out and "rate_per_second" not in out and "seconds_left" not in out
    assert re.search(r"State\s+draft", out) and re.search(r"Total\s+0 recipient", out)
    add_confirmed(3)
    blasts.start_blast(alert_id)
    db.session.commit()
    out = runner.invoke(args=["alert", "status", str(alert_id)]).output
    assert re.search(r"Waiting\s+3", out) and re.search(r"Time left\s+unknown yet", out)
    assert "None" not in out


def test_send_without_a_terminal_never_asks(app, ctx):
    """CliRunner's stdin is no terminal, as in a script: the blast starts with no prompt."""
    runner = app.test_cli_runner()
    add_confirmed(1)
    alert_id = make_alert()
    result = runner.invoke(args=["alert", "send", str(alert_id)], input="")
    assert result.exit_code == 0 and "?" not in result.output
    assert db.session.get(Alert, alert_id).state in ("sending", "sent")


# -- import ----------------------------------------------------------------------------------


def _import(app, path, *extra):
    return app.test_cli_runner().invoke(
        args=["subscribers", "import", str(path), "--consent", "documented", "--source", "Fair", *extra]
    )


def test_an_unterminated_quote_does_not_swallow_the_next_rows(app, ctx, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text('email,source\n"ann@example.org,Fair\nbob@example.org,Fair\ncy@example.org,Fair\n')
    result = _import(app, path, "--report", str(tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    emails = set(db.session.scalars(sa.select(Subscriber.email)))
    assert emails == {"bob@example.org", "cy@example.org"}  # read again, each on its own
    assert "1 row rejected" in result.output and "unterminated-quote" in result.output
    report = (tmp_path / "r.csv").read_text()
    assert '2,"ann@example.org,Fair",unterminated-quote' in report and "lines 2–4" in report
    # In a source column too: the quote opened in line 2's source swallowed lines 3 and 4.
    path.write_text('email,source\ndee@example.org,"Fair\neve@example.org,Fair\nfay@example.org,Fair\n')
    _import(app, path)
    assert {"eve@example.org", "fay@example.org"} <= set(db.session.scalars(sa.select(Subscriber.email)))
    assert "dee@example.org" not in set(db.session.scalars(sa.select(Subscriber.email)))
    # And in a column the import does not read: the row has no address left of its own.
    path.write_text('name,email\n"Gil,gil@example.org\nHal,hal@example.org\nIda,ida@example.org\n')
    out = _import(app, path).output
    assert "unterminated-quote" in out
    assert {"hal@example.org", "ida@example.org"} <= set(db.session.scalars(sa.select(Subscriber.email)))


def test_import_wording(app, ctx, tmp_path):
    clean = tmp_path / "clean.csv"
    clean.write_text("email\nnew@example.org\n")
    out = _import(app, clean).output
    assert "0 rows rejected, 0 repeated an earlier row, 0 left as they are." in out
    assert not out.rstrip().endswith(":")
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,name\nz@example.org,Zoë\n".encode("latin-1"))
    bad = _import(app, latin1)
    assert bad.exit_code == 2 and "line 2 is not UTF-8" in bad.output and "line 0" not in bad.output
    nameless = tmp_path / "nameless.csv"
    nameless.write_text("name,mail\nAda,ada@example.org\n")
    missing = _import(app, nameless)
    assert missing.exit_code == 2 and "--map" in missing.output


def test_import_progress_counts_data_lines_only(app, ctx, tmp_path):
    from alerts.subscribers import importing

    path = tmp_path / "three.csv"
    path.write_bytes(b"email\na@example.org\nb@example.org\nc@example.org\n")
    seen: list[int] = []
    with open(path, "rb") as f:
        total = importing.check_file(f)
        importing.import_file(f, consent="documented", source="Fair", progress=seen.append)
    assert total == sum(seen) == 3


def test_staff_import_for_real_keeps_the_file_and_the_mapping(app, staff_client):
    import io

    client = staff_client
    text = "Name,Mail\nAda,ada@example.org\nBad,bad@\nAda,ada@example.org\n"
    token = csrf_token(client, "/staff/subscribers/import")
    dry = client.post("/staff/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": token, "file": (io.BytesIO(text.encode()), "list.csv"),
        "consent": "documented", "source": "Fair", "email_column": "Mail", "dry_run": "y",
    })
    body = dry.get_data(as_text=True)
    assert dry.status_code == 200, body
    assert "Rows not imported, by reason" in body and "What it means" in body
    assert re.search(r"Repeats of an earlier row</dt><dd>1 ", body)
    assert re.search(r"Already known, left as they are</dt><dd>0<", body)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
    form = body.split('id="import-for-real"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    assert fields["email_column"] == "Mail" and fields["consent"] == "documented"
    assert "dry_run" not in fields
    real = client.post("/staff/subscribers/import", data=fields)  # one press, no second upload
    assert real.status_code == 200, real.get_data(as_text=True)
    assert "Imported list.csv" in real.get_data(as_text=True)
    with app.app_context():
        assert set(db.session.scalars(sa.select(Subscriber.email))) == {"ada@example.org"}
    # The kept file is gone once imported: pressing again asks for the file.
    again = client.post("/staff/subscribers/import", data=fields)
    assert again.status_code == 400 and "no longer kept" in again.get_data(as_text=True)


# -- the dev inbox ---------------------------------------------------------------------------


def _mail(smtp, n: int) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", smtp.port) as s:
        for i in range(n):
            body = (f"From: a@example.org\r\nTo: r{i}@example.org\r\nSubject: Message {i}\r\n"
                    f"Content-Type: text/html\r\n\r\n<html><head></head><body>"
                    f"<a href='http://x/confirm/{i}'>Confirm</a></body></html>\r\n")
            s.sendmail("a@example.org", [f"r{i}@example.org"], body)
    smtp.handler.wait_for(n, timeout=10)


def test_dev_inbox_pages_searches_and_clears(smtp):
    from alerts.testing.inbox import INBOX_PAGE_SIZE, inbox_app

    _mail(smtp, INBOX_PAGE_SIZE + 5)
    inbox = inbox_app(smtp).test_client()
    first = inbox.get("/").get_data(as_text=True)
    assert 'name=viewport' in first
    assert first.count("<tr>") == INBOX_PAGE_SIZE + 1  # the header row and one page
    assert f"Message {INBOX_PAGE_SIZE + 4}<" in first and "Message 0<" not in first  # newest first
    assert "Page 1 of 2" in first
    second = inbox.get("/?page=2").get_data(as_text=True)
    assert "Message 0<" in second and second.count("<tr>") == 6
    found = inbox.get("/?q=r7@example").get_data(as_text=True)
    assert "Message 7<" in found and found.count("<tr>") == 2
    message = inbox.get("/7").get_data(as_text=True)
    assert "&lt;base target=&#34;_blank&#34;&gt;" in message  # inside the escaped srcdoc
    assert "allow-popups-to-escape-sandbox" in message
    assert inbox.post("/clear", headers={"Origin": "http://evil.example"}).status_code == 403
    assert len(smtp.messages) == INBOX_PAGE_SIZE + 5
    assert inbox.post("/clear").status_code == 303
    assert smtp.messages == [] and "0 messages" in inbox.get("/").get_data(as_text=True)


# -- scripts ---------------------------------------------------------------------------------


@pytest.mark.slow  # runs scripts/setup
def test_setup_markers_survive_alternating_dev_and_test(tmp_path):
    """scripts/dev and scripts/test share .venv: each install is made once, not on every switch."""
    import shutil
    import subprocess

    root = Path(__file__).resolve().parent.parent
    (tmp_path / "scripts").mkdir()
    shutil.copy(root / "scripts" / "setup", tmp_path / "scripts" / "setup")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {tmp_path / 'calls.log'}\n")  # pip, as a log line
    fake.chmod(0o755)
    env = {**os.environ, "SKIP_APT": "1", "SKIP_NPM": "1"}
    for mode in ([], ["--test"], [], ["--test"], []):
        subprocess.run(["bash", "scripts/setup", *mode], cwd=tmp_path, env=env, check=True, timeout=30)
    installs = [c for c in (tmp_path / "calls.log").read_text().splitlines() if "install -q -e" in c]
    assert installs == ["-m pip install -q -e .", "-m pip install -q -e .[test]"]
    # A changed pyproject.toml is installed afresh, and its old markers go.
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '2'\n")
    subprocess.run(["bash", "scripts/setup"], cwd=tmp_path, env=env, check=True, timeout=30)
    markers = sorted(p.name for p in (tmp_path / ".venv").glob(".installed-*"))
    assert len(markers) == 1 and markers[0].endswith("-0")


@pytest.mark.slow  # runs scripts/pg_check.py
def test_pg_check_tells_a_missing_database_from_a_missing_server():
    import subprocess
    import sys

    from alerts.mail.smtp import free_port

    script = Path(__file__).resolve().parent.parent / "scripts" / "pg_check.py"

    def check(url: str) -> tuple[int, str]:
        done = subprocess.run([sys.executable, str(script), url], capture_output=True, text=True, timeout=30)
        return done.returncode, done.stdout

    rc, out = check(f"postgresql+psycopg://postgres@127.0.0.1:{free_port('127.0.0.1')}/test")
    assert rc == 1 and out.startswith("PostgreSQL does not answer at 127.0.0.1:")
    rc, out = check("postgresql+psycopg://postgres@127.0.0.1:5432/no_such_database_i14")
    if "does not answer" in out:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432 to tell the two apart")
    assert rc == 1 and "has no database named 'no_such_database_i14'" in out
    assert "createdb" in out
