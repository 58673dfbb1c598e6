"""Subscriber import and export: the CLI, the staff upload and download, the rules per row."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import ConsentRecord, Subscriber, Suppression, email_hash, utcnow
from alerts.subscribers import importing
from alerts.subscribers.exporting import export_csv
from tests.helpers import csrf_token, link_in, write_csv

SOURCE = "Paper petition, Pride march 2026"
ROOT = Path(__file__).resolve().parent.parent


def run(app, *args):
    return app.test_cli_runner().invoke(args=["subscribers", *args])


def subscribers() -> dict[str, Subscriber]:
    db.session.expire_all()
    return {s.email: s for s in db.session.scalars(sa.select(Subscriber))}


def add(email: str, status: str, **values) -> Subscriber:
    sub = Subscriber(email=email, status=status, **values)
    db.session.add(sub)
    db.session.commit()
    return sub


def suppress(email: str, *, keep_address: bool = True) -> None:
    db.session.add(Suppression(email_hash=email_hash(email), email=email if keep_address else None,
                               reason="hard-bounce"))
    db.session.commit()


def read_report(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


MIXED = """\
email,name
new1@example.org,One
New2@Example.ORG,Two
not an address,Three
,Four
new1@EXAMPLE.org,One again
pending@example.org,Five
confirmed@example.org,Six
gone@example.org,Seven
bounced@example.org,Eight
erased@example.org,Nine
"""


def test_documented_import_applies_every_rule_and_reports_each_row(app, ctx, tmp_path):
    add("pending@example.org", "pending", confirm_nonce="n" * 32)
    add("confirmed@example.org", "confirmed", source="web-form")
    add("gone@example.org", "unsubscribed", unsubscribed_at=utcnow())
    suppress("bounced@example.org")
    suppress("erased@example.org", keep_address=False)  # hash only, as after an erasure
    path = write_csv(tmp_path / "list.csv", MIXED)
    report_path = tmp_path / "rejected.csv"

    result = run(app, "import", str(path), "--consent", "documented", "--source", SOURCE,
                 "--report", str(report_path))

    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "10 rows read" in out
    assert "2 new subscribers added as confirmed." in out
    assert "1 pending subscriber confirmed." in out
    assert "2 rows rejected, 1 repeated an earlier row, 4 left as they are, by reason:" in out
    subs = subscribers()
    assert set(subs) == {"new1@example.org", "New2@example.org", "pending@example.org",
                         "confirmed@example.org", "gone@example.org"}
    for email in ("new1@example.org", "New2@example.org", "pending@example.org"):
        sub = subs[email]
        assert sub.status == "confirmed" and sub.confirmed_at is not None and sub.confirm_nonce is None
        assert sub.source == SOURCE
        (record,) = sub.consents
        assert (record.event, record.source) == ("import:documented", SOURCE)
        assert record.consent_text_version == app.config["CONSENT_TEXT_VERSION"]
    assert subs["confirmed@example.org"].source == "web-form"  # left as it was
    assert subs["confirmed@example.org"].consents == []
    assert subs["gone@example.org"].status == "unsubscribed"  # an unsubscribe is the person's choice
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 2

    rows = read_report(report_path)
    assert [(r["line"], r["email"], r["reason"]) for r in rows] == [
        ("4", "not an address", "invalid-email"),
        ("5", "", "missing-email"),
        ("6", "new1@EXAMPLE.org", "duplicate"),
        ("8", "confirmed@example.org", "already-confirmed"),
        ("9", "gone@example.org", "unsubscribed"),
        ("10", "bounced@example.org", "suppressed"),
        ("11", "erased@example.org", "suppressed"),
    ]
    assert "line 2" in rows[2]["detail"]  # which row it was merged into
    assert "never resubscribes" in rows[4]["detail"]


def test_dry_run_changes_nothing_and_reports_what_would_happen(app, ctx, tmp_path, smtp):
    add("pending@example.org", "pending", confirm_nonce="n" * 32)
    path = write_csv(tmp_path / "list.csv", MIXED)
    for consent in ("documented", "confirm-first"):
        result = run(app, "import", str(path), "--consent", consent, "--source", SOURCE, "--dry-run")
        assert result.exit_code == 0, result.output
        assert "dry run: nothing was changed" in result.stdout
        assert "6 new subscribers would be added as" in result.stdout
    assert set(subscribers()) == {"pending@example.org"}
    assert subscribers()["pending@example.org"].status == "pending"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 0
    assert smtp.messages == []


def test_documented_needs_a_source(app, ctx, tmp_path):
    path = write_csv(tmp_path / "list.csv", "email\na@example.org\n")
    result = run(app, "import", str(path), "--consent", "documented")
    assert result.exit_code == 2
    assert "--source is required with --consent documented" in result.output
    assert subscribers() == {}


def test_a_file_without_an_email_column_is_a_usage_error(app, ctx, tmp_path):
    path = write_csv(tmp_path / "list.csv", "name,phone\nAda,555\n")
    result = run(app, "import", str(path), "--consent", "confirm-first")
    assert result.exit_code == 2
    assert "the header row names no email column" in result.output
    assert "'name', 'phone'" in result.output
    wrong_map = run(app, "import", str(path), "--consent", "confirm-first", "--map", "email=Mail")
    assert wrong_map.exit_code == 2 and "has no such column" in wrong_map.output
    bad_map = run(app, "import", str(path), "--consent", "confirm-first", "--map", "shoe_size=phone")
    assert bad_map.exit_code == 2 and "unknown field 'shoe_size'" in bad_map.output
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,name\nz@example.org,Zoë\n".encode("latin-1"))
    not_utf8 = run(app, "import", str(latin1), "--consent", "confirm-first")
    assert not_utf8.exit_code == 2 and "not UTF-8" in not_utf8.output
    assert subscribers() == {}


def test_column_mapping_header_variants_and_semicolons(app, ctx, tmp_path):
    mapped = write_csv(tmp_path / "mapped.csv",
                       "Name,Work mail,Where\nAda,ada@example.org,Stall at the fair\nBo,bo@example.org,\n")
    result = run(app, "import", str(mapped), "--consent", "documented", "--source", SOURCE,
                 "--map", "email=work MAIL", "--map", "source=Where")
    assert result.exit_code == 0, result.output
    subs = subscribers()
    assert subs["ada@example.org"].source == "Stall at the fair"  # the row's own source
    assert subs["bo@example.org"].source == SOURCE  # an empty cell falls back to --source
    assert subs["ada@example.org"].consents[0].source == "Stall at the fair"

    # A spreadsheet's "E-mail Address" header and semicolons, with a byte-order mark.
    variant = tmp_path / "variant.csv"
    variant.write_bytes("\ufeffFirst;E-mail Address\nCy;cy@example.org\n".encode())
    result = run(app, "import", str(variant), "--consent", "documented", "--source", SOURCE)
    assert result.exit_code == 0, result.output
    assert "cy@example.org" in subscribers()


def test_chunks_merge_duplicates_across_chunk_boundaries(app, ctx):
    lines = ["email"] + [f"p{i % 7}@example.org" for i in range(30)] + ["p1@example.org"]
    text = io.StringIO("\n".join(lines) + "\n")
    seen = []
    report = importing.import_csv(text, consent="documented", source=SOURCE, chunk_size=2,
                                  progress=seen.append)
    assert (report.rows, report.created, report.reasons["duplicate"]) == (31, 7, 24)
    assert sum(seen) == len(lines) - 1  # every line after the header was counted, once
    assert len(subscribers()) == 7


def test_confirm_first_sends_each_a_confirmation_and_respects_the_cooldown(
    app, ctx, tmp_path, smtp, celery_worker
):
    add("waiting@example.org", "pending", confirm_nonce="a" * 32, last_confirmation_at=utcnow())
    add("stale@example.org", "pending", confirm_nonce="b" * 32,
        last_confirmation_at=utcnow() - timedelta(days=2))
    add("member@example.org", "confirmed")
    path = write_csv(tmp_path / "list.csv", "email\nfresh1@example.org\nfresh2@example.org\n"
                     "waiting@example.org\nstale@example.org\nmember@example.org\n")

    result = run(app, "import", str(path), "--consent", "confirm-first", "--source", "Old list")
    assert result.exit_code == 0, result.output
    assert "2 new subscribers added as pending." in result.stdout
    assert "1 pending subscriber sent a fresh confirmation." in result.stdout
    assert "3 confirmation emails queued." in result.stdout

    received = smtp.handler.wait_for(3, timeout=15)
    assert sorted(m.rcpt_tos[0] for m in received) == [
        "fresh1@example.org", "fresh2@example.org", "stale@example.org"]
    subs = subscribers()
    assert subs["fresh1@example.org"].status == "pending"
    assert subs["fresh1@example.org"].confirm_nonce != subs["fresh2@example.org"].confirm_nonce
    assert [c.event for c in subs["fresh1@example.org"].consents] == ["import:confirm-first"]
    assert subs["member@example.org"].status == "confirmed"

    # The link in the email confirms, as for a signup from the form.
    message = next(m for m in received if m.rcpt_tos == ["fresh1@example.org"])
    client = app.test_client()
    assert client.post(urlsplit(link_in(message, "/confirm/")).path).status_code == 200
    db.session.expire_all()
    assert subscribers()["fresh1@example.org"].status == "confirmed"
    # Confirming sends the welcome email (not a confirmation): let it arrive before the next step.
    assert "Welcome" in smtp.handler.wait_for(4, timeout=10)[-1].message["Subject"]

    # Importing the same file again mails nobody: each address is in its cooldown now.
    smtp.handler.clear()
    again = run(app, "import", str(path), "--consent", "confirm-first", "--source", "Old list")
    assert "0 confirmation emails queued." in again.stdout
    assert "3 confirmation-recent" in again.stdout
    assert "2 already-confirmed" in again.stdout
    assert smtp.handler.wait_for(1, timeout=1) == []


@pytest.mark.commits
def test_confirm_first_with_the_broker_away_frees_the_cooldown(app, ctx, tmp_path, smtp, monkeypatch):
    from alerts import queueing

    def broker_down(*args, **kwargs):
        raise OSError("Connection refused")

    monkeypatch.setattr(queueing, "_send", broker_down)
    path = write_csv(tmp_path / "list.csv", "email\nq1@example.org\nq2@example.org\n")
    report_path = tmp_path / "report.csv"
    result = run(app, "import", str(path), "--consent", "confirm-first", "--report", str(report_path))
    assert result.exit_code == 0, result.output
    assert "0 confirmation emails queued." in result.stdout and "2 not-queued" in result.stdout
    assert [r["reason"] for r in read_report(report_path)] == ["not-queued", "not-queued"]
    subs = subscribers()
    assert {s.status for s in subs.values()} == {"pending"}
    # The cooldown slot was given back, so running the import again sends the confirmations.
    assert {s.last_confirmation_at for s in subs.values()} == {None}
    monkeypatch.undo()
    calls = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: calls.append(sorted(args[0])))
    again = run(app, "import", str(path), "--consent", "confirm-first")
    assert "2 pending subscribers sent a fresh confirmation." in again.stdout
    assert calls == [sorted(s.id for s in subs.values())]


def test_cli_export_streams_csv(app, ctx, tmp_path):
    add("a@example.org", "confirmed", confirmed_at=utcnow(), source="web-form")
    add("b@example.org", "pending")
    add("c@example.org", "unsubscribed", unsubscribed_at=utcnow())
    everyone = run(app, "export")
    assert everyone.exit_code == 0, everyone.output
    rows = list(csv.DictReader(io.StringIO(everyone.stdout)))
    assert list(rows[0]) == ["email", "status", "first_name", "last_name", "postal_code", "language",
                             "source", "created_at", "confirmed_at", "unsubscribed_at", "phone"]
    assert [r["email"] for r in rows] == ["a@example.org", "b@example.org", "c@example.org"]
    assert rows[0]["source"] == "web-form" and rows[0]["confirmed_at"].endswith("+00:00")
    confirmed = run(app, "export", "--status", "confirmed")
    assert [r["status"] for r in csv.DictReader(io.StringIO(confirmed.stdout))] == ["confirmed"]
    assert run(app, "export", "--status", "nope").exit_code == 2

    # Exported, then imported into an empty list, the confirmed ones come back as they were.
    db.session.execute(sa.delete(Subscriber))
    db.session.commit()
    path = write_csv(tmp_path / "export.csv", confirmed.stdout)
    assert run(app, "import", str(path), "--consent", "documented", "--source", "export").exit_code == 0
    assert set(subscribers()) == {"a@example.org"}


def test_export_is_chunked(app, ctx):
    db.session.execute(sa.insert(Subscriber), [{"email": f"s{i}@example.org", "status": "confirmed"}
                                                for i in range(25)])
    db.session.commit()
    pieces = list(export_csv("confirmed", chunk_size=10))
    assert len(pieces) == 4  # the header, then 10 + 10 + 5 rows
    assert sum(p.count("\r\n") for p in pieces) == 26


def upload(client, text: str, **fields):
    data = {"csrf_token": csrf_token(client, "/staff/subscribers/import"),
            "file": (io.BytesIO(text.encode()), "list.csv"), **fields}
    return client.post("/staff/subscribers/import", data=data, content_type="multipart/form-data")


def test_staff_upload_with_dry_run_then_for_real(app, staff_client):
    page = staff_client.get("/staff/subscribers/import")
    assert page.status_code == 200 and 'type="file"' in page.get_data(as_text=True)
    text = "Name,Mail\nAda,ada@example.org\nBad,bad@\nAda,ada@example.org\n"

    dry = upload(staff_client, text, consent="documented", source=SOURCE, email_column="Mail",
                 dry_run="y")
    body = dry.get_data(as_text=True)
    assert dry.status_code == 200, body
    assert "nothing changed yet" in body and "invalid-email" in body and "bad@" in body
    with app.app_context():
        assert subscribers() == {}

    real = upload(staff_client, text, consent="documented", source=SOURCE, email_column="Mail")
    body = real.get_data(as_text=True)
    assert real.status_code == 200, body
    assert "Imported list.csv" in body and "duplicate" in body
    with app.app_context():
        subs = subscribers()
        assert set(subs) == {"ada@example.org"} and subs["ada@example.org"].source == SOURCE


def test_staff_upload_errors_are_shown_on_the_form(app, staff_client):
    no_source = upload(staff_client, "email\na@example.org\n", consent="documented")
    assert no_source.status_code == 400
    assert "Say where and how these people consented" in no_source.get_data(as_text=True)
    no_column = upload(staff_client, "name\nAda\n", consent="confirm-first")
    assert no_column.status_code == 400
    assert "the header row names no email column" in no_column.get_data(as_text=True)
    with app.app_context():
        assert subscribers() == {}


def test_staff_export_download_streams(app, staff_client):
    with app.app_context():
        add("a@example.org", "confirmed")
        add("b@example.org", "pending")
    response = staff_client.get("/staff/subscribers/export.csv?status=pending")
    assert response.status_code == 200
    assert response.is_streamed
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["email"] for r in rows] == ["b@example.org"]
    assert staff_client.get("/staff/subscribers/export.csv?status=bogus").status_code == 400


def test_data_pages_need_a_login(client):
    assert client.get("/staff/subscribers/export.csv").status_code == 302
    assert client.get("/staff/subscribers/import").status_code == 302
    assert client.post("/staff/subscribers/import").status_code in (400, 401)


@pytest.mark.slow  # runs bench/import_csv.py
def test_bench_script_runs(app, tmp_path):
    """bench.import_csv, small: it checks its own counts; here it must just finish."""
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, "-m", "bench.import_csv", "--rows", "3000", "--json", str(out),
         "--redis-url", app.config["REDIS_URL"]],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text())
    assert figures["first"]["created"] == figures["kinds"]["valid_unique"]
    assert figures["again"]["reasons"]["already-confirmed"] == figures["kinds"]["valid_unique"]
