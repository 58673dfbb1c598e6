"""The first hour in a real browser: errors at the form, the dev inbox's confirm, phone tables."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect
from werkzeug.serving import make_server

from alerts.extensions import db
from alerts.models import Subscriber
from alerts.testing.inbox import inbox_app
from tests.helpers import add_confirmed, create_staff, make_alert, seed_actions
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in

pytestmark = pytest.mark.slow


EMAIL = "first-hour@example.org"
PASSWORD = "a long staff password"



def in_viewport(locator) -> bool:
    return locator.evaluate(
        "el => { const r = el.getBoundingClientRect();"
        " return r.top >= 0 && r.bottom <= window.innerHeight && r.height > 0; }"
    )


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_a_bad_address_is_answered_at_the_form(app, live_server, browser, phone, shots):
    with app.app_context():
        seed_actions()
    page = browsers.new_page(browser, phone=phone)
    try:
        page.goto(live_server.url + "/")
        # The jump to the form is on screen from the start, and takes the visitor there.
        jump = page.get_by_role("link", name="Get alerts")
        expect(jump).to_be_in_viewport()
        jump.click()
        expect(page.get_by_label("Email address")).to_be_in_viewport()

        # The browser checks the address first: nothing is posted, the field says why.
        field = page.get_by_label("Email address")
        field.fill("not an address")
        page.get_by_role("button", name="Sign up").click()
        assert "/subscribe" not in page.url  # nothing was posted
        assert field.evaluate("el => !el.validity.valid && el.validationMessage.length > 0")

        # An address the browser accepts and the server does not: the answer is at the form.
        field.fill("someone@localhost")
        page.get_by_role("button", name="Sign up").click()
        error = page.locator("#email-error")
        expect(error).to_be_visible()
        assert page.url.endswith("/subscribe#advocate")
        assert in_viewport(error), "the error is off screen"
        expect(page.get_by_label("Email address")).to_be_focused()
        page.screenshot(path=shots / f"signup-error-{'390' if phone else '1280'}.png")
    finally:
        page.context.close()
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


@pytest.fixture
def inbox_server(smtp):
    server = make_server("127.0.0.1", 0, inbox_app(smtp), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_dev_inbox_confirm_button_works(
    app, live_server, celery_worker, smtp, inbox_server, browser_page, monkeypatch, shots
):
    """The HTML email's link opens a page of its own (as from a mail client), where the button works."""
    monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
    with app.app_context():
        seed_actions()
    page = browser_page
    page.goto(live_server.url + "/")
    page.get_by_label("Email address").fill("inbox-reader@example.org")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    expect(page.get_by_text("inbox-reader@example.org")).to_be_visible()
    smtp.handler.wait_for(1, timeout=20)

    page.goto(inbox_server + "/")
    page.get_by_role("link", name=re.compile("Confirm your subscription")).click()
    frame = page.frame_locator("iframe[title='HTML part']")
    with page.context.expect_page() as opened:
        frame.get_by_role("link", name=re.compile("Confirm", re.I)).first.click()
    confirm_page = opened.value
    confirm_page.wait_for_load_state()
    expect(confirm_page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    confirm_page.get_by_role("button", name=re.compile("subscribe me", re.I)).click()
    expect(confirm_page.get_by_role("heading", name="You’re subscribed")).to_be_visible()
    with app.app_context():
        status = db.session.scalar(
            sa.select(Subscriber.status).where(Subscriber.email == "inbox-reader@example.org")
        )
    assert status == "confirmed"
    # Opening the used link again says so at once, before any button.
    confirm_page.reload()
    expect(confirm_page.get_by_role("heading", name="You’re already subscribed")).to_be_visible()
    page.screenshot(path=shots / "dev-inbox-message-1280.png")



def test_staff_tables_on_a_phone_are_cards_with_nothing_cut_off(app, live_server, browser, shots):
    with app.app_context():
        seed_actions()
        create_staff(EMAIL, PASSWORD)
        add_confirmed(3, prefix="alex.montgomery")
        make_alert("Tell the mayor: close Rikers")
    page = browsers.new_page(browser, phone=True)
    try:
        staff_log_in(page, live_server.url, EMAIL, PASSWORD)
        for path, name in (("/staff/actions", "actions"), ("/staff/subscribers", "subscribers"),
                           ("/staff/alerts", "alerts")):
            page.goto(live_server.url + path)
            width = page.evaluate("window.innerWidth")
            assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{path} scrolls sideways"
            cells = page.locator("table.table tbody td")
            assert cells.count() > 0
            labelled = page.locator("table.table tbody td[data-label]")
            assert labelled.count() > 0, "cells carry their column's name"
            for button in page.locator("table.table .row-buttons button, table.table .row-buttons a").all():
                box = button.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (path, box)
            page.screenshot(path=shots / f"staff-{name}-390.png", full_page=True)
        # An address is not broken mid-word: one line for a 32-character address at 390 px.
        page.goto(live_server.url + "/staff/subscribers")
        link = page.locator("td.email a").first
        height, line = link.evaluate(
            "el => [el.getBoundingClientRect().height, parseFloat(getComputedStyle(el).lineHeight) || 24]"
        )
        assert height < 1.5 * line, f"the address wraps ({height}px for a {line}px line)"
    finally:
        page.context.close()


def test_the_test_send_answer_is_in_view(app, live_server, celery_worker, smtp, browser, shots):
    with app.app_context():
        create_staff(EMAIL, PASSWORD)
        alert_id = make_alert("Seen where the eye is")
    for phone in (False, True):
        page = browsers.new_page(browser, phone=phone)
        try:
            staff_log_in(page, live_server.url, EMAIL, PASSWORD)
            page.goto(f"{live_server.url}/staff/alerts/{alert_id}")
            page.get_by_role("button", name="Send a test").click()
            flash = page.locator(".flash-success")
            expect(flash).to_contain_text("Test sent to")
            assert in_viewport(flash), "the confirmation is off screen"
            expect(page.get_by_role("button", name="Send a test")).to_be_visible()
            page.screenshot(path=shots / f"staff-test-sent-{'390' if phone else '1280'}.png")
        finally:
            page.context.close()


# -- the command line on a terminal (a real pty, so stdin is a terminal as for a person) ------


def _on_a_terminal(app, argv: list[str], answer: str | None, queue: str) -> tuple[int, str]:
    """Run `alerts …` with a pty as its terminal; type `answer` when it asks."""
    import pty
    import select
    import subprocess
    import time

    from tests.processes import worker_env

    env = worker_env(app, redis_url=app.config["REDIS_URL"], smtp_url=app.config["SMTP_URL"], queue=queue)
    script = Path(sys.executable).with_name("alerts")
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([str(script), *argv], stdin=secondary, stdout=secondary, stderr=secondary,
                            env=env, cwd=Path(__file__).resolve().parent.parent, close_fds=True)
    os.close(secondary)
    out, answered, deadline = b"", False, time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        if answer is not None and not answered and b"[y/N]" in out:
            os.write(primary, answer.encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=30)
    os.close(primary)
    return proc.returncode, out.decode(errors="replace")


def test_send_on_a_terminal_asks_first_and_yes_skips_it(app):
    import uuid

    from alerts import redis_conn
    from alerts.models import Alert

    queue = f"pty-{uuid.uuid4().hex[:8]}"  # nothing consumes it: the blast is only started
    with app.app_context():
        add_confirmed(2)
        alert_id = make_alert("Asked before it goes")
    try:
        code, out = _on_a_terminal(app, ["alert", "send", str(alert_id)], "n", queue)
        assert "Send alert" in out and "“Asked before it goes”" in out and "2 confirmed subscribers" in out
        assert code == 1 and "not sent" in out
        with app.app_context():
            assert db.session.get(Alert, alert_id).state == "draft"
        code, out = _on_a_terminal(app, ["alert", "send", str(alert_id), "--yes"], None, queue)
        assert code == 0 and "[y/N]" not in out, out
        with app.app_context():
            assert db.session.get(Alert, alert_id).state == "sending"
    finally:
        redis_conn.client(app.config["REDIS_URL"]).delete(queue)
