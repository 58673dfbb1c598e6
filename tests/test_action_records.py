"""Staff and CLI side of signatures: listing, counts, CSV export (formula-safe), signer import."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alerts.actions import records, signing
from alerts.extensions import db
from alerts.models import Action, Signature, Subscriber
from tests.helpers import SEED_ACTIONS, csrf_token, seed_actions

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"


def _action(slug: str = RIKERS) -> Action:
    db.session.rollback()
    return db.session.scalar(sa.select(Action).where(Action.slug == slug))


def add_signatures(action: Action, rows: list[dict]) -> None:
    now = datetime.now(UTC)
    for i, row in enumerate(rows):
        email = row.get("email", f"s{i}@example.org")
        db.session.add(Signature(
            action_id=action.id, email=email, email_key=email.casefold(), name=row.get("name", f"S {i}"),
            postal_code=row.get("postal_code"), comment=row.get("comment"),
            source=row.get("source", "direct"), created_at=row.get("at", now),
            confirmed_at=None if row.get("flagged") else row.get("at", now),
        ))
    db.session.commit()


@pytest.fixture
def seeded(app, ctx):
    seed_actions()


def test_csv_export_neutralises_formulas_and_leaves_out_flagged_and_erased(seeded):
    action = _action()
    add_signatures(action, [
        {"name": "=HYPERLINK(\"http://evil\",\"x\")", "email": "a@example.org", "comment": "+1 for kids"},
        {"name": "@SUM(A1)", "email": "b@example.org", "postal_code": "-10001"},
        {"name": "Flagged", "email": "c@example.org", "flagged": True},
        {"name": "", "email": "", "source": "alert"},  # an erased signature
    ])
    rows = list(csv.reader(io.StringIO("".join(records.export_csv(action.id)))))
    assert rows[0] == list(records.EXPORT_COLUMNS)
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://evil\",\"x\")", "'@SUM(A1)"]
    assert rows[1][3] == "'+1 for kids" and rows[2][2] == "'-10001"
    assert signing.count(action.id) == 3  # the erased one still counts; the flagged one not yet


def test_counts_by_day_and_by_source(seeded):
    action = _action()
    day = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    add_signatures(action, [
        {"email": "a@example.org", "at": day, "source": "alert"},
        {"email": "b@example.org", "at": day + timedelta(hours=1), "source": "alert"},
        {"email": "c@example.org", "at": day + timedelta(hours=2), "source": "share"},
        {"email": "d@example.org", "at": day + timedelta(days=2), "source": "direct", "flagged": True},
    ])
    assert records.by_day(action.id) == [(day.date(), 1), ((day + timedelta(days=1)).date(), 2)]
    assert {(s.source, s.counted, s.flagged) for s in records.by_source(action.id)} == {
        ("alert", 2, 0), ("share", 1, 0), ("direct", 0, 1)}


def test_goal_is_staffs_or_the_next_round_number(seeded):
    action = _action()
    assert [signing.goal_for(action, n) for n in (0, 99, 100, 249, 250, 999, 1000, 12_345)] == [
        100, 100, 250, 250, 500, 1000, 2500, 25_000]
    action.goal = 5000
    assert signing.goal_for(action, 7000) == 5000


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_list_open_close_and_signatures(app, seeded):
    runner = app.test_cli_runner()
    add_signatures(_action(), [{"email": "a@example.org", "name": "=cmd"}, {"email": "b@example.org"}])
    listed = json.loads(runner.invoke(args=["action", "list", "--json"]).output)
    assert [a["title"] for a in listed] == [t for t, _c, _s in SEED_ACTIONS]
    rikers = next(a for a in listed if a["slug"] == RIKERS)
    assert {k: rikers[k] for k in ("kind", "open", "signatures", "goal")} == {
        "kind": "petition", "open": True, "signatures": 2, "goal": None}
    assert "closed" in runner.invoke(args=["action", "close", RIKERS]).output
    assert _action().is_open is False
    assert runner.invoke(args=["action", "open", RIKERS]).exit_code == 0 and _action().is_open
    missing = runner.invoke(args=["action", "close", "no-such-action"])
    assert missing.exit_code != 0 and "no-such-action" in missing.output
    out = runner.invoke(args=["action", "signatures", RIKERS]).output
    assert out.splitlines()[0] == ",".join(records.EXPORT_COLUMNS) and "'=cmd" in out
    as_json = json.loads(runner.invoke(args=["action", "signatures", RIKERS, "--format", "json"]).output)
    assert sorted(s["email"] for s in as_json) == ["a@example.org", "b@example.org"]


def test_cli_import_signatures(app, seeded, tmp_path):
    db.session.add(Subscriber(email="known@example.org", status="confirmed"))
    db.session.commit()
    add_signatures(_action(), [{"email": "already@example.org"}])
    good = tmp_path / "signers.csv"
    good.write_text(
        "\ufeffE-mail Address;First Name;Last Name;ZIP;Date\n"
        "known@example.org;Kno;Wn;10001;2026-11-01T10:00:00Z\n"
        "ALREADY@example.org;Al;Ready;;\n"
        "new@example.org;Ne;W;;\n"
        "new@EXAMPLE.org;Dup;Licate;;\n"
        "not-an-address;X;Y;;\n"
        ";;;;\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(args=["action", "import-signatures", RIKERS, str(good)])
    assert result.exit_code == 0, result.output
    assert "2 added, 2 already signed, 1 rejected" in result.output
    assert "line 6: invalid email" in result.output
    db.session.rollback()
    rows = {s.email_key: s for s in db.session.scalars(sa.select(Signature))}
    assert set(rows) == {"already@example.org", "known@example.org", "new@example.org"}
    known = rows["known@example.org"]
    assert (known.name, known.postal_code, known.source) == ("Kno Wn", "10001", "import")
    assert known.subscriber_id is not None and known.created_at == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert signing.count(_action().id) == 3
    # A file without an email column, or not UTF-8, is refused whole.
    latin1 = "email,name\nx@example.org,Jos\xe9\n".encode("latin-1")
    for name, data in (("nomail.csv", b"name,zip\nA,1\n"), ("latin1.csv", latin1)):
        bad = tmp_path / name
        bad.write_bytes(data)
        refused = runner.invoke(args=["action", "import-signatures", RIKERS, str(bad)])
        assert refused.exit_code == 2 and "nothing was imported" in refused.output
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Signature)) == 3


# -- staff pages --------------------------------------------------------------------------------



def test_staff_signatures_page_search_pages_and_export(app, seeded_staff_client):
    with app.app_context():
        action = _action()
        add_signatures(action, [{"email": f"p{i:03d}@example.org", "name": f"P {i:03d}"} for i in range(60)]
                       + [{"email": "zed@example.org", "name": "Zed Findme", "source": "share"}])
        action_id = action.id
    html = seeded_staff_client.get(f"/staff/actions/{action_id}/signatures").get_data(as_text=True)
    assert "<strong>61</strong> counted" in html and "Page 1 of 2" in html and "By day (UTC)" in html
    assert "<td>share</td>" in html
    found = seeded_staff_client.get(f"/staff/actions/{action_id}/signatures?q=findme").get_data(as_text=True)
    assert "zed@example.org" in found and "p001@example.org" not in found
    page2 = seeded_staff_client.get(f"/staff/actions/{action_id}/signatures?page=2").get_data(as_text=True)
    assert "Page 2 of 2" in page2
    export = seeded_staff_client.get(f"/staff/actions/{action_id}/signatures.csv")
    assert export.mimetype == "text/csv" and "attachment" in export.headers["Content-Disposition"]
    assert len(export.get_data(as_text=True).splitlines()) == 62
    listing = seeded_staff_client.get("/staff/actions").get_data(as_text=True)
    assert f'/staff/actions/{action_id}/signatures">61</a>' in listing


def test_staff_edit_sets_goal_target_text_and_settings(app, seeded_staff_client):
    with app.app_context():
        action = _action()
    page = f"/staff/actions/{action.id}/edit"
    data = {"title": action.title, "slug": action.slug, "summary": action.summary,
            "call_to_action": action.call_to_action, "kind": "pledge", "url": "", "is_open": "y",
            "target": "NYC Council", "body": "Para one.\n\nPara two.", "pledge_text": "I pledge.",
            "pledge_text_es": "Me comprometo.",
            "goal": "2500", "allow_comments": "y", "requires_confirmation": "y",
            "csrf_token": csrf_token(seeded_staff_client, page)}
    assert seeded_staff_client.post(page, data=data).status_code == 303
    with app.app_context():
        action = _action()
    assert (action.kind, action.target, action.goal, action.pledge_text, action.allow_comments,
            action.requires_confirmation) == ("pledge", "NYC Council", 2500, "I pledge.", True, True)
    public = seeded_staff_client.get(f"/actions/{action.slug}").get_data(as_text=True)
    assert "<p>Para one.</p><p>Para two.</p>" in public and "Goal 2,500" in public
    token = csrf_token(seeded_staff_client, page)
    bad = seeded_staff_client.post(page, data={**data, "goal": "0", "csrf_token": token})
    assert bad.status_code == 400 and "1 or more" in bad.get_data(as_text=True)


def test_staff_import_signers_page(app, seeded_staff_client):
    with app.app_context():
        action = _action()
    page = f"/staff/actions/{action.id}/signatures"
    upload = {"file": (io.BytesIO(b"email,name\nx@example.org,X\nbad,Y\n"), "signers.csv"),
              "csrf_token": csrf_token(seeded_staff_client, page)}
    response = seeded_staff_client.post(f"{page}/import", data=upload, content_type="multipart/form-data")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "1 added, 0 already signed, 1 rejected" in html
    refused = seeded_staff_client.post(f"{page}/import", content_type="multipart/form-data", data={
        "file": (io.BytesIO(b"name\nX\n"), "x.csv"), "csrf_token": csrf_token(seeded_staff_client, page)})
    assert refused.status_code == 400 and "no email column" in refused.get_data(as_text=True)
    with app.app_context():
        assert signing.count(action.id) == 1
