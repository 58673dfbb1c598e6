"""Importing mails no one unless the importer asks: not at the import, not minutes later.

The sweep that sends welcomes lost with the broker (`welcome.unsent`) must not take a
documented import for confirmations whose welcome went missing; `--welcome` (the staff form's
box) sends each newly confirmed subscriber the welcome once.
"""

from __future__ import annotations

import collections
import io
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from alerts import queueing, tasks
from alerts.extensions import db
from alerts.models import Subscriber, utcnow
from alerts.subscribers import welcome
from tests.helpers import csrf_token, seed_actions, write_csv

SOURCE = "Paper petition, Pride march 2026"
ROWS = "email\nana@example.org\nben@example.org\ncai@example.org\n"
PAST_GRACE = welcome.SWEEP_GRACE + timedelta(seconds=30)


def _cli(app, *args):
    return app.test_cli_runner().invoke(args=["subscribers", "import", *args])


@pytest.fixture
def published(monkeypatch) -> list[tuple]:
    """Every task handed to the broker, recorded instead of sent."""
    sent: list[tuple] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: sent.append((name, tuple(args))))
    return sent


def _sweep_past_the_grace() -> dict:
    """The sweep as its beat runs it once the grace has passed since the import."""
    for sub in db.session.scalars(sa.select(Subscriber)):
        sub.confirmed_at -= PAST_GRACE
        if sub.welcomed_for is not None:
            sub.welcomed_for -= PAST_GRACE
    db.session.commit()
    return tasks.sweep.run()


def test_a_documented_import_welcomes_no_one_then_or_later(app, ctx, tmp_path, published):
    seed_actions()
    db.session.add(Subscriber(email="ben@example.org", status="pending", confirm_nonce="n" * 32))
    db.session.commit()
    result = _cli(app, str(write_csv(tmp_path / "list.csv", ROWS)), "--consent", "documented",
                  "--source", SOURCE)
    assert result.exit_code == 0, result.output
    assert "0 welcome emails: none was asked for, so nobody is mailed." in result.output
    db.session.expire_all()
    assert set(db.session.scalars(sa.select(Subscriber.status))) == {"confirmed"}
    # The sweep's selection at any time past its grace, within its hour: nobody.
    for minutes in (3, 30, 59):
        assert welcome.unsent(now=utcnow() + timedelta(minutes=minutes)) == []
    assert _sweep_past_the_grace()["welcomes_queued"] == 0
    assert published == []  # nothing was queued for anyone: no mail at all


def test_welcome_asked_for_welcomes_each_once(app, ctx, tmp_path, smtp, celery_worker):
    seed_actions()
    db.session.add(Subscriber(email="ben@example.org", status="pending", confirm_nonce="n" * 32))
    db.session.commit()
    path = str(write_csv(tmp_path / "list.csv", ROWS))
    dry = _cli(app, path, "--consent", "documented", "--source", SOURCE, "--welcome", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "3 welcome emails would be queued." in dry.output
    real = _cli(app, path, "--consent", "documented", "--source", SOURCE, "--welcome")
    assert real.exit_code == 0, real.output
    assert "3 welcome emails queued." in real.output
    arrived = smtp.handler.wait_for(3, timeout=15)
    welcomes = [m for m in arrived if "Welcome" in m.message["Subject"]]
    assert sorted(r for m in welcomes for r in m.rcpt_tos) == [
        "ana@example.org", "ben@example.org", "cai@example.org"]
    db.session.expire_all()
    for sub in db.session.scalars(sa.select(Subscriber)):
        assert sub.welcomed_for == sub.confirmed_at  # claimed: never again
    assert _sweep_past_the_grace()["welcomes_queued"] == 0
    for sub_id in db.session.scalars(sa.select(Subscriber.id)):
        assert welcome.send_welcome(sub_id) is False
    assert collections.Counter(r for m in smtp.handler.messages for r in m.rcpt_tos) == {
        "ana@example.org": 1, "ben@example.org": 1, "cai@example.org": 1}


def test_welcome_is_refused_where_it_cannot_mean_anything(app, ctx, tmp_path, published):
    path = str(write_csv(tmp_path / "list.csv", ROWS))
    first = _cli(app, path, "--consent", "confirm-first", "--welcome")
    assert first.exit_code == 2 and "--welcome goes with --consent documented" in first.output
    welcome.save_text("Welcome", "Hello.", False)
    db.session.commit()
    off = _cli(app, path, "--consent", "documented", "--source", SOURCE, "--welcome")
    assert off.exit_code == 2 and "the welcome email is switched off" in off.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
    assert published == []


def _upload(client, rows: str = ROWS, **fields):
    data = {"csrf_token": csrf_token(client, "/staff/subscribers/import"),
            "file": (io.BytesIO(rows.encode()), "list.csv"), "consent": "documented",
            "source": SOURCE, **fields}
    return client.post("/staff/subscribers/import", data=data, content_type="multipart/form-data")


def test_the_staff_form_mails_no_one_unless_its_box_is_ticked(app, staff_client, published):
    page = staff_client.get("/staff/subscribers/import").get_data(as_text=True)
    box = re.search(r'<input[^>]*name="send_welcome"[^>]*>', page).group(0)
    assert "checked" not in box and "Send them the welcome email" in page

    plain = _upload(staff_client, "email\ndee@example.org\n")
    body = plain.get_data(as_text=True)
    assert plain.status_code == 200, body
    assert "<dt>Welcome emails</dt><dd>0: none was asked for, so nobody is mailed</dd>" in body
    assert published == []
    with app.app_context():
        assert welcome.unsent(now=utcnow() + PAST_GRACE) == []

    dry = _upload(staff_client, send_welcome="y", dry_run="y")
    body = dry.get_data(as_text=True)
    assert dry.status_code == 200, body
    assert "<dt>Welcome emails</dt><dd>3 would be queued</dd>" in body
    assert published == []
    form = body.split('id="import-for-real"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    assert fields["send_welcome"] == "y"  # "Import for real" keeps the choice
    real = staff_client.post("/staff/subscribers/import", data=fields)
    assert real.status_code == 200
    assert "<dt>Welcome emails</dt><dd>3 queued</dd>" in real.get_data(as_text=True)
    with app.app_context():
        ids = set(db.session.scalars(sa.select(Subscriber.id).where(Subscriber.email != "dee@example.org")))
    assert [(name, kind) for name, (kind, _) in published] == [("alerts.tasks.queue_emails", "welcome")]
    assert set(published[0][1][1]) == ids


@pytest.mark.slow
def test_the_import_page_in_a_browser(app, live_server, browser, tmp_path, shots, published):
    """The box is unticked and explained; the dry run's report says how many would be welcomed,
    and "Import for real" keeps the choice. At desktop and phone width."""
    from playwright.sync_api import expect

    from tests.helpers import create_staff
    from tests.plugins.browsers import new_page, staff_log_in

    with app.app_context():
        create_staff("staff@example.org", "correct horse battery")
    for phone in (False, True):
        page = new_page(browser, phone=phone)
        width = "390" if phone else "1280"
        csv_file = write_csv(tmp_path / f"list-{width}.csv", ROWS.replace("@", f"{width}@"))
        staff_log_in(page, live_server.url, "staff@example.org", "correct horse battery")
        page.goto(live_server.url + "/staff/subscribers/import")
        box = page.get_by_label("Send them the welcome email")
        expect(box).not_to_be_checked()
        page.set_input_files('input[name="file"]', str(csv_file))
        page.get_by_label("We hold documented consent").check()
        page.get_by_label("Source of consent").fill(SOURCE)
        box.check()
        page.screenshot(path=str(shots / f"import-form-{width}.png"), full_page=True)
        page.get_by_role("button", name="Upload").click()
        expect(page.locator("dl.summary")).to_contain_text("Welcome emails3 would be queued")
        page.screenshot(path=str(shots / f"import-dry-run-{width}.png"), full_page=True)
        if not phone:
            page.get_by_role("button", name="Import for real").click()
            expect(page.locator("dl.summary")).to_contain_text("Welcome emails3 queued")
            page.screenshot(path=str(shots / f"import-done-{width}.png"), full_page=True)
        page.goto(live_server.url + "/unsubscribe/test-send")
        expect(page.get_by_role("heading", name="A sample unsubscribe link")).to_be_visible()
        page.screenshot(path=str(shots / f"unsubscribe-sample-{width}.png"), full_page=True)
        page.context.close()
    assert [name for name, _ in published] == ["alerts.tasks.queue_emails"]
