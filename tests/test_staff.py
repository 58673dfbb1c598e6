"""The staff side: accounts and login, the gate on every page, actions, alerts and subscribers."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from flask import url_for

from alerts import redis_conn
from alerts.extensions import db
from alerts.models import Action, Alert, Delivery, StaffUser, Subscriber
from alerts.web.staff import auth
from tests.helpers import (
    SEED_ACTIONS,
    STAFF_EMAIL,
    STAFF_IP,
    STAFF_PASSWORD,
    add_confirmed,
    blasts,
    create_staff,
    csrf_token,
    log_in,
    make_alert,
    post,
    save_alert,
    seed_actions,
    wait_for_state,
)

EMAIL, PASSWORD = STAFF_EMAIL, STAFF_PASSWORD


@pytest.fixture(autouse=True)
def _no_lockouts(app):
    """Failed-login counters live in Redis, outside the tables the suite empties."""

    def clear():
        r = redis_conn.client(app.config["REDIS_URL"])
        pattern = f"{app.config.get('RATELIMIT_KEY_PREFIX', '')}:staff-login:*"
        keys = list(r.scan_iter(match=pattern))
        if keys:
            r.delete(*keys)

    clear()
    yield
    clear()


def error_text(response) -> str:
    body = response.get_data(as_text=True)
    match = re.search(r'<p class="flash flash-error" role="alert">([^<]+)</p>', body)
    assert match, body
    return match.group(1)


def flashes(client, path="/staff/") -> str:
    return client.get(path).get_data(as_text=True)


# -- accounts and login ----------------------------------------------------------------------


def test_create_staff_from_the_command_line(app):
    runner = app.test_cli_runner()

    def create(email: str, password: str):
        # `alerts` (a FlaskGroup) runs every command in an app context; the test runner's
        # plain group does so only for @with_appcontext commands, so push one here.
        with app.app_context():
            return runner.invoke(args=["create-staff", email, "--password-stdin"], input=password + "\n")

    result = create("X@Example.org", "a long enough password")
    assert result.exit_code == 0, result.output
    assert "x@example.org created" in result.output
    with app.app_context():
        user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == "x@example.org"))
        assert user.password_hash.startswith("$argon2id$")

    short = create("y@example.org", "short")
    assert short.exit_code == 2
    assert "the password is too short: it needs at least 12 characters" in short.output
    again = create("x@example.org", "another long password")
    assert again.exit_code == 2
    assert "already exists" in again.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 1

    # And the new account can log in.
    client = app.test_client()
    assert log_in(client, email="x@example.org", password="a long enough password").status_code == 303


def test_login_and_logout(client, staff):
    first = client.get("/staff/")
    assert first.status_code == 302
    assert first.headers["Location"] == "/staff/login?next=/staff/"

    page = client.get("/staff/login?next=/staff/")
    assert page.status_code == 200
    assert 'name="password"' in page.get_data(as_text=True)

    response = log_in(client, email="  Staff@Example.org ", next_url="/staff/")
    assert response.status_code == 303
    assert response.headers["Location"] == "/staff/"
    dashboard = client.get("/staff/")
    assert dashboard.status_code == 200
    assert EMAIL in dashboard.get_data(as_text=True)

    out = post(client, "/staff/logout")
    assert out.status_code == 303
    assert out.headers["Location"] == "/staff/login"
    assert "You are logged out." in client.get("/staff/login").get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_unknown_account_and_wrong_password_get_the_same_answer(client, staff):
    wrong = log_in(client, password="not the password")
    unknown = log_in(client, email="nobody@example.org")
    assert wrong.status_code == unknown.status_code == 401
    assert error_text(wrong) == error_text(unknown)
    assert "match" in error_text(wrong)
    assert client.get("/staff/").status_code == 302


def test_login_redirects_only_to_local_paths(client, staff):
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        response = log_in(client, next_url=evil)
        assert response.status_code == 303
        assert response.headers["Location"] == "/staff/", evil
    assert log_in(client, next_url="/staff/actions").headers["Location"] == "/staff/actions"


def test_login_starts_a_fresh_session(client, staff):
    with client.session_transaction() as sess:
        sess["planted"] = "by someone else"
    before = csrf_token(client, "/staff/login")
    log_in(client)
    with client.session_transaction() as sess:
        assert "planted" not in sess
        assert sess.permanent
        assert isinstance(sess[auth.SESSION_LOGIN_AT], int)
    assert csrf_token(client, "/staff/") != before


def test_an_account_locks_after_five_failures(app, client, staff):
    for attempt in range(1, 5):
        response = log_in(client, password=f"wrong {attempt}")
        assert response.status_code == 401
    fifth = log_in(client, password="wrong 5")
    assert fifth.status_code == 429
    assert "locked" in error_text(fifth)
    # Even the right password is refused while the lock lasts, with the same clear message.
    locked = log_in(client)
    assert locked.status_code == 429
    assert "locked for another 15 minutes" in error_text(locked)
    assert client.get("/staff/").status_code == 302

    # Another account is not affected; an unknown address locks the same way (no enumeration).
    with app.app_context():
        create_staff("other@example.org", PASSWORD)
    assert log_in(client, email="other@example.org").status_code == 303
    for _ in range(5):
        last = log_in(client, email="ghost@example.org", password="guess", ip="203.0.113.10")
    assert last.status_code == 429
    assert error_text(last) == error_text(fifth)


def test_a_lock_ends_after_its_time(app, client, staff, monkeypatch):
    monkeypatch.setitem(app.config, "STAFF_LOCKOUT_SECONDS", 1)
    for _ in range(5):
        log_in(client, password="wrong")
    assert log_in(client).status_code == 429
    with app.app_context():  # until the lock's key has expired in Redis (its second is up)
        lock = auth._key("lock", STAFF_EMAIL, STAFF_IP)
        deadline = time.monotonic() + 10
        while auth._redis().exists(lock) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert log_in(client).status_code == 303


def test_logins_are_throttled_per_address(client, staff):
    for i in range(10):
        assert log_in(client, email=f"guess{i}@example.org", ip="198.51.100.99").status_code == 401
    throttled = log_in(client, ip="198.51.100.99")
    assert throttled.status_code == 429
    assert "Too many requests" in throttled.get_data(as_text=True)
    # Another address is not throttled.
    assert log_in(client, ip="198.51.100.100").status_code == 303


def test_a_session_ends_a_fixed_time_after_log_in(app, staff_client, monkeypatch):
    monkeypatch.setitem(app.config, "PERMANENT_SESSION_LIFETIME", 120)
    assert staff_client.get("/staff/").status_code == 200
    with staff_client.session_transaction() as sess:
        sess[auth.SESSION_LOGIN_AT] = int(time.time()) - 121
    response = staff_client.get("/staff/actions")
    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/login?next=/staff/actions"
    assert "Your session has ended" in staff_client.get("/staff/login").get_data(as_text=True)
    with staff_client.session_transaction() as sess:
        assert auth.SESSION_USER not in sess
    # Being busy does not extend it: a fresh login does.
    log_in(staff_client)
    assert staff_client.get("/staff/actions").status_code == 200


def _dummy_url(app, rule) -> str:
    with app.test_request_context():
        return url_for(rule.endpoint, **{name: 1 for name in rule.arguments})


def test_every_staff_page_needs_a_log_in(app, client, staff):
    rules = [r for r in app.url_map.iter_rules() if r.rule.startswith("/staff")]
    # The login's second step answers without a pending login too (tests/test_twofactor.py).
    guarded = [r for r in rules if r.endpoint not in ("staff.login", "staff.login_2fa")]
    assert len(guarded) >= 20, [r.rule for r in guarded]
    # A valid CSRF token (from the login page), so that only the missing login can refuse a POST.
    token = csrf_token(client, "/staff/login")
    checked = 0
    for rule in guarded:
        url = _dummy_url(app, rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data={"csrf_token": token})
            where = f"{method} {rule.rule}"
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/staff/login?next="), where
            else:
                assert response.status_code in (401, 403), where
            checked += 1
    assert checked >= len(guarded)
    assert client.get("/staff/alerts/1/status.json").get_json() == {"error": "login required"}


def test_staff_posts_need_the_csrf_token(client, staff_client):
    assert client.post("/staff/actions/new", data={"title": "X", "call_to_action": "Go",
                                                   "kind": "petition"}).status_code == 400
    assert client.post("/staff/logout").status_code == 400
    assert client.get("/staff/").status_code == 200  # still logged in
    other = client.application.test_client()
    assert other.post("/staff/login", data={"email": EMAIL, "password": PASSWORD}).status_code == 400


def test_staff_pages_send_protective_headers(staff_client):
    response = staff_client.get("/staff/")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"


# -- the dashboard ---------------------------------------------------------------------------


def test_dashboard_counts_subscribers_and_lists_recent_alerts(app, staff_client):
    with app.app_context():
        add_confirmed(3)
        db.session.add(Subscriber(email="p@example.org", status="pending"))
        db.session.commit()
        make_alert("Hello from the dashboard")
    page = staff_client.get("/staff/").get_data(as_text=True)
    assert re.search(r'stat-number">3</span><span class="stat-label">confirmed', page)
    assert re.search(r'stat-number">1</span><span class="stat-label">pending', page)
    assert "Hello from the dashboard" in page


# -- actions -----------------------------------------------------------------------------------


def _actions(app) -> list[Action]:
    with app.app_context():
        rows = db.session.scalars(sa.select(Action).order_by(Action.position, Action.id)).all()
        db.session.expunge_all()
        return rows


def test_create_edit_and_validate_actions(app, staff_client):
    form = {"title": "Protect Kids Online", "slug": "", "summary": "Ask Congress to act.",
            "call_to_action": "Sign the Petition", "kind": "petition", "url": "", "is_open": "y"}
    created = post(staff_client, "/staff/actions/new", form, page="/staff/actions/new")
    assert created.status_code == 303
    (action,) = _actions(app)
    assert (action.slug, action.title, action.is_open, action.url) == (
        "protect-kids-online", "Protect Kids Online", True, None)
    listing = staff_client.get("/staff/actions").get_data(as_text=True)
    assert "Protect Kids Online" in listing and "badge-open" in listing

    # A second action with the same title gets its own slug.
    post(staff_client, "/staff/actions/new", form, page="/staff/actions/new")
    assert [a.slug for a in _actions(app)] == ["protect-kids-online", "protect-kids-online-2"]

    # Problems are named, with a 400, and nothing is saved.
    bad = post(staff_client, "/staff/actions/new",
               {**form, "title": "", "slug": "protect-kids-online", "url": "ftp://x", "kind": "other"},
               page="/staff/actions/new")
    assert bad.status_code == 400
    body = bad.get_data(as_text=True)
    assert "The title is required." in body
    assert "Enter a full address starting with https://" in body
    assert "Not a valid choice" in body
    taken = post(staff_client, "/staff/actions/new", {**form, "slug": "protect-kids-online"},
                 page="/staff/actions/new")
    assert taken.status_code == 400
    assert "already used by “Protect Kids Online”" in taken.get_data(as_text=True)
    assert len(_actions(app)) == 2

    edit_url = f"/staff/actions/{action.id}/edit"
    page = staff_client.get(edit_url).get_data(as_text=True)
    assert 'value="Protect Kids Online"' in page
    edited = post(staff_client, edit_url,
                  {**form, "title": "Keep Kids Safe Online", "slug": "kids-online", "kind": "pledge",
                   "call_to_action": "Sign the Pledge", "url": "https://example.org/pledge"},
                  page=edit_url)
    assert edited.status_code == 303
    again = _actions(app)[0]
    assert (again.slug, again.title, again.kind, again.url) == (
        "kids-online", "Keep Kids Safe Online", "pledge", "https://example.org/pledge")
    assert staff_client.get("/staff/actions/999999/edit").status_code == 404


def test_open_close_and_reorder_actions(app, client, staff_client):
    with app.app_context():
        seed_actions()
    first, second, third = (a.id for a in _actions(app)[:3])
    titles = [t for t, _c, _s in SEED_ACTIONS]

    closed = post(staff_client, f"/staff/actions/{first}/toggle")
    assert closed.status_code == 303
    assert not _actions(app)[0].is_open
    assert titles[0] not in client.get("/").get_data(as_text=True)
    post(staff_client, f"/staff/actions/{first}/toggle")
    assert _actions(app)[0].is_open

    assert post(staff_client, f"/staff/actions/{second}/move", {"direction": "up"}).status_code == 303
    assert [a.id for a in _actions(app)[:3]] == [second, first, third]
    post(staff_client, f"/staff/actions/{second}/move", {"direction": "up"})  # already first
    post(staff_client, f"/staff/actions/{first}/move", {"direction": "down"})
    assert [a.id for a in _actions(app)[:3]] == [second, third, first]
    last = _actions(app)[-1].id
    post(staff_client, f"/staff/actions/{last}/move", {"direction": "down"})  # already last
    assert _actions(app)[-1].id == last
    assert post(staff_client, f"/staff/actions/{first}/move", {"direction": "sideways"}).status_code == 400

    public = [m for m in re.findall(r"<h2><a [^>]+>([^<]+)</a></h2>", client.get("/").get_data(as_text=True))]
    assert public[:3] == [titles[1], titles[2], titles[0]]


# -- alerts: compose and preview ------------------------------------------------------------------


def test_compose_defaults_to_every_open_action(app, staff_client):
    with app.app_context():
        seed_actions()
        db.session.execute(sa.update(Action).where(Action.position == 70).values(is_open=False))
        db.session.commit()
    page = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    checkbox = r'<input checked id="actions-\d+" name="actions" type="checkbox" value="([^"]+)"'
    checked = re.findall(checkbox, page)
    assert len(checked) == 6
    # Closed: not offered as an action to include (its signers can still be an audience).
    assert not re.search(r'name="actions" type="checkbox" value="fight-against-discrimination', page)


def test_compose_sanitises_markdown_and_previews(app, staff_client):
    with app.app_context():
        seed_actions()
    slugs = [a.slug for a in _actions(app)][:2]
    intro = ("Hello **friends**.\n\n<script>alert('x')</script>\n\n"
             "[click](javascript:alert(1)) and [our site](https://example.org/)\n\n"
             '<img src=x onerror="alert(2)">')
    response = post(staff_client, "/staff/alerts/new",
                    {"subject": "Speak up for kids", "preheader": "It takes two minutes",
                     "intro_md": intro, "actions": slugs}, page="/staff/alerts/new")
    assert response.status_code == 303
    with app.app_context():
        alert = db.session.scalar(sa.select(Alert))
        assert [a.slug for a in alert.actions] == slugs
        assert alert.created_by == EMAIL
        alert_id = alert.id
    assert response.headers["Location"] == f"/staff/alerts/{alert_id}"

    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert f'src="/staff/alerts/{alert_id}/preview.html"' in page
    assert "Send a test" in page

    html = staff_client.get(f"/staff/alerts/{alert_id}/preview.html")
    assert html.status_code == 200
    assert html.mimetype == "text/html"
    csp = html.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    body = html.get_data(as_text=True)
    assert "<strong>friends</strong>" in body
    assert "<script" not in body.lower()
    assert 'href="javascript:' not in body.lower()  # markdown-it leaves such a link as text
    assert "onerror" not in body.lower() or "&lt;img" in body
    assert 'href="https://example.org/"' in body
    assert SEED_ACTIONS[0][0] in body and SEED_ACTIONS[2][0] not in body

    text = staff_client.get(f"/staff/alerts/{alert_id}/preview.txt")
    assert text.status_code == 200
    assert text.headers["Content-Type"] == "text/plain; charset=utf-8"
    plain = text.get_data(as_text=True)
    assert plain.startswith("Subject: Speak up for kids\n")
    assert "Hello **friends**." in plain
    assert SEED_ACTIONS[1][0] in plain


def test_compose_names_its_problems(app, staff_client):
    with app.app_context():
        seed_actions()
    empty = post(staff_client, "/staff/alerts/new", {"subject": "", "intro_md": "x"},
                 page="/staff/alerts/new")
    assert empty.status_code == 400
    body = empty.get_data(as_text=True)
    assert "The subject is required." in body
    assert "Choose at least one action." in body
    long_preheader = post(staff_client, "/staff/alerts/new",
                          {"subject": "S", "preheader": "p" * 201,
                           "actions": ["sign-the-healthy-kids-healthy-minds-pledge"]},
                          page="/staff/alerts/new")
    assert long_preheader.status_code == 400
    assert "Field cannot be longer than 200 characters." in long_preheader.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)) == 0


def test_edit_a_draft_but_not_a_sent_alert(app, staff_client):
    with app.app_context():
        alert_id = make_alert("First subject")
    url = f"/staff/alerts/{alert_id}/edit"
    form = staff_client.get(url).get_data(as_text=True)
    assert 'value="First subject"' in form
    slug = re.search(r'name="actions" type="checkbox" value="([^"]+)"', form).group(1)
    edited = post(staff_client, url, {"subject": "Second subject", "intro_md": "New words",
                                      "actions": [slug]}, page=url)
    assert edited.status_code == 303
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.subject, alert.intro_md, [a.slug for a in alert.actions]) == (
            "Second subject", "New words", [slug])
        blasts.cancel(alert_id)
    refused = staff_client.get(url)
    assert refused.status_code == 303
    assert "only a draft can be edited" in flashes(staff_client, f"/staff/alerts/{alert_id}")


# -- alerts: test sends, sending, controlling -------------------------------------------------------


def test_send_a_test_to_a_staff_address(app, staff_client, smtp):
    with app.app_context():
        alert_id = make_alert("Test me")
    page = f"/staff/alerts/{alert_id}"
    assert f'value="{EMAIL}"' in staff_client.get(page).get_data(as_text=True)  # the default
    response = post(staff_client, f"/staff/alerts/{alert_id}/test", {"to": "me@example.org"}, page=page)
    assert response.status_code == 303
    (received,) = smtp.handler.wait_for(1, timeout=10)
    assert received.rcpt_tos == ["me@example.org"]
    assert received.message["Subject"] == "[TEST] Test me"
    assert "Test sent to me@example.org" in flashes(staff_client, page)
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "draft"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 0

    bad = post(staff_client, f"/staff/alerts/{alert_id}/test", {"to": "not an address"}, page=page)
    assert bad.status_code == 303
    assert "Test not sent: Enter an email address" in flashes(staff_client, page)


def test_a_test_send_with_the_mail_server_down_explains_itself(app, staff_client, monkeypatch):
    with app.app_context():
        alert_id = make_alert()
    page = f"/staff/alerts/{alert_id}"
    monkeypatch.setitem(app.config, "SMTP_URL", "smtp://127.0.0.1:9")
    response = post(staff_client, f"/staff/alerts/{alert_id}/test", {"to": "me@example.org"}, page=page)
    assert response.status_code == 303
    shown = flashes(staff_client, page)
    assert "Test not sent: the mail server could not be reached" in shown


def test_send_through_the_confirmation_step(app, staff_client, smtp, celery_worker):
    with app.app_context():
        add_confirmed(20)
        alert_id = make_alert("To everyone")
    page = f"/staff/alerts/{alert_id}"
    # The draft's page comes without the count (seconds on a big list) and fetches it after.
    draft_page = staff_client.get(page).get_data(as_text=True)
    assert "Counting who it goes to: everyone confirmed" in draft_page
    assert f'data-url="/staff/alerts/{alert_id}/recipients.json"' in draft_page
    assert "Review and send…" in draft_page
    counted = staff_client.get(f"{page}/recipients.json")
    assert counted.json["size"] == 20
    assert counted.json["words"].startswith("Send to 20 people: everyone confirmed")
    confirm_page = staff_client.get(f"{page}/send")
    assert confirm_page.status_code == 200
    text = confirm_page.get_data(as_text=True)
    assert "Send to 20 people: everyone confirmed" in text and "To everyone" in text

    unticked = post(staff_client, f"{page}/send", {}, page=f"{page}/send")
    assert unticked.status_code == 400
    assert "Tick the box to confirm." in unticked.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "draft"

    sent = post(staff_client, f"{page}/send", {"confirm": "y"}, page=f"{page}/send")
    assert sent.status_code == 303
    assert sent.headers["Location"] == page
    with app.app_context():
        final = wait_for_state(alert_id, timeout=60)
    assert final["state"] == "sent", final
    status = staff_client.get(f"{page}/status.json")
    assert status.status_code == 200
    data = status.get_json()
    assert (data["state"], data["percent"], data["sent"], data["total"]) == ("sent", 100.0, 20, 20)
    assert len(smtp.handler.wait_for(20, timeout=10)) == 20
    shown = staff_client.get(page).get_data(as_text=True)
    assert 'data-field="percent">100</span>' in shown

    # Once sent, the confirmation step refuses to send again.
    assert staff_client.get(f"{page}/send").status_code == 303
    again = post(staff_client, f"{page}/send", {"confirm": "y"}, page=page)
    assert again.status_code == 303
    assert "only a draft can be sent" in flashes(staff_client, page)


def test_no_send_without_confirmed_subscribers(app, staff_client):
    with app.app_context():
        alert_id = make_alert()
    page = f"/staff/alerts/{alert_id}"
    assert "no confirmed subscribers" in staff_client.get(page).get_data(as_text=True)
    post(staff_client, f"{page}/send", {"confirm": "y"}, page=page)
    with app.app_context():
        assert db.session.get(Alert, alert_id).state == "draft"


def test_pause_and_cancel(app, staff_client):
    with app.app_context():
        add_confirmed(5)
        alert_id = make_alert()
        blasts.start_blast(alert_id)  # recipients fixed; nothing dispatched, no worker needed
    page = f"/staff/alerts/{alert_id}"
    shown = staff_client.get(page).get_data(as_text=True)
    assert 'data-state="sending"' in shown and "Pause" in shown and "Cancel sending" in shown
    assert 'data-confirm="Cancel this alert?' in shown

    assert post(staff_client, f"{page}/pause", page=page).status_code == 303
    assert staff_client.get(f"{page}/status.json").get_json()["state"] == "paused"
    # Pausing twice is refused with the engine's reason, not an error page.
    response = post(staff_client, f"{page}/pause", page=page)
    assert response.status_code == 303
    assert "only a sending alert can be paused" in flashes(staff_client, page)

    assert post(staff_client, f"{page}/cancel", page=page).status_code == 303
    status = staff_client.get(f"{page}/status.json").get_json()
    assert (status["state"], status["skipped"], status["percent"]) == ("cancelled", 5, 100.0)
    assert "Resume" not in staff_client.get(page).get_data(as_text=True)
    post(staff_client, f"{page}/resume", page=page)
    assert "only a paused alert can be resumed" in flashes(staff_client, page)
    assert staff_client.get("/staff/alerts/424242").status_code == 404
    assert post(staff_client, "/staff/alerts/424242/pause").status_code == 404
    assert staff_client.get("/staff/alerts/424242/status.json").status_code == 404


def test_resume_finishes_the_blast(app, staff_client, smtp, celery_worker):
    with app.app_context():
        add_confirmed(6)
        alert_id = make_alert()
        blasts.start_blast(alert_id)
        blasts.pause(alert_id)
    page = f"/staff/alerts/{alert_id}"
    assert "Resume" in staff_client.get(page).get_data(as_text=True)
    assert post(staff_client, f"{page}/resume", page=page).status_code == 303
    with app.app_context():
        final = wait_for_state(alert_id, timeout=60)
    assert (final["state"], final["sent"]) == ("sent", 6)


def test_alert_list(app, staff_client):
    with app.app_context():
        make_alert("Alpha alert")
        save_alert(None, subject="Beta alert", intro_md="", action_slugs=None)
    page = staff_client.get("/staff/alerts").get_data(as_text=True)
    assert page.index("Beta alert") < page.index("Alpha alert")
    assert page.count('badge-draft">draft') == 2


# -- subscribers -----------------------------------------------------------------------------------


def test_subscribers_filter_search_and_pages(app, staff_client):
    with app.app_context():
        add_confirmed(60, prefix="conf")
        db.session.add_all([
            Subscriber(email="waiting@example.org", status="pending"),
            Subscriber(email="Gone.Away@example.org", status="unsubscribed"),
            Subscriber(email="under_score@example.org", status="pending"),
        ])
        db.session.commit()

    def rows(response):
        body = response.get_data(as_text=True)
        return re.findall(r'<td class="email"><a href="[^"]+">([^<]+)</a></td>', body)

    everyone = staff_client.get("/staff/subscribers")
    body = everyone.get_data(as_text=True)
    assert len(rows(everyone)) == 50
    assert re.search(r'All <span class="count">63</span>', body)
    assert re.search(r'Confirmed <span class="count">60</span>', body)
    assert re.search(r'Pending <span class="count">2</span>', body)
    assert "Page 1 of 2" in body
    second = staff_client.get("/staff/subscribers?page=2")
    assert len(rows(second)) == 13
    assert set(rows(everyone)).isdisjoint(rows(second))

    pending = staff_client.get("/staff/subscribers?status=pending")
    assert sorted(rows(pending)) == ["under_score@example.org", "waiting@example.org"]
    assert rows(staff_client.get("/staff/subscribers?q=GONE")) == ["Gone.Away@example.org"]
    assert rows(staff_client.get("/staff/subscribers?q=_")) == ["under_score@example.org"]
    assert rows(staff_client.get("/staff/subscribers?status=confirmed&q=conf0001")) == [
        f"conf{i:05d}@example.org" for i in range(19, 9, -1)
    ]
    assert len(rows(staff_client.get("/staff/subscribers?status=bogus&page=-3"))) == 50
    assert rows(staff_client.get("/staff/subscribers?page=99")) == []


def test_background_requests_never_resend_the_session_cookie(staff_client):
    """A late answer to a background request (live counts, progress) used to carry the session
    as it was when that request started, overwriting a newer cookie: a flash was lost."""
    for path in ("/staff/", "/staff/alerts"):
        assert staff_client.get(path).status_code == 200
        headers = staff_client.get(path).headers.getlist("Set-Cookie")
        assert [h for h in headers if h.startswith("session=")] == [], path


def test_sending_a_list_fixed_in_chunks_counts_after_the_commit(app, staff_client, monkeypatch):
    """A large list: nothing is counted before the send (seconds at a million), and the flash
    still names everyone it goes to."""
    from alerts import queueing

    queued = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: queued.append(name))
    monkeypatch.setitem(app.config, "BLAST_FILL_CHUNK", 50)  # the send fixes the first 5
    with app.app_context():
        add_confirmed(30)
        alert_id = make_alert()
    page = f"/staff/alerts/{alert_id}"
    post(staff_client, f"{page}/send", {"confirm": "y"}, page=f"{page}/send")
    assert "Sending to 30 subscribers" in flashes(staff_client, page)
    with app.app_context():
        alert = db.session.get(Alert, alert_id)
        assert (alert.state, alert.recipients_expected) == ("sending", 30)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)) == 5
    assert queued == ["alerts.tasks.dispatch_blast"]


def test_passwords_are_hashed_at_argon2s_production_cost(_cheap_password_hashing):
    """Tests hash cheaply (tests/plugins/staff.py); the app itself uses argon2id at its library's
    default cost (RFC 9106's low-memory choice: 64 MiB, three passes)."""
    hasher, errors = _cheap_password_hashing()
    stored = hasher.hash("a long enough password")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert hasher.verify(stored, "a long enough password")
    with pytest.raises(errors):
        hasher.verify(stored, "a wrong password!!")
