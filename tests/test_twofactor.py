"""Two-factor login: TOTP with replay refused, single-use recovery codes, the second login step and
its lockout, the grace login confined to setting it up, and the setting that says who must."""

from __future__ import annotations

import re

import pyotp
import pytest
import sqlalchemy as sa
from flask import url_for

from alerts import redis_conn, twofactor
from alerts.config import ConfigError, load_config
from alerts.extensions import db
from alerts.models import Action, AuditEvent, StaffRecoveryCode, StaffUser
from alerts.permissions import Role, at_least
from alerts.web.staff.blueprint import OPEN_ENDPOINTS
from tests.helpers import STAFF_EMAIL, STAFF_IP, STAFF_PASSWORD, create_staff, csrf_token, log_in, post

T = 1_800_000_000  # a fixed time, at the start of a 30-second step
SENDERS = at_least(Role.SENDER)


@pytest.fixture(autouse=True)
def _no_lockouts(app):
    """Failure counters and locks live in Redis, outside the tables the suite empties."""

    def clear():
        r = redis_conn.client(app.config["REDIS_URL"])
        prefix = app.config.get("RATELIMIT_KEY_PREFIX", "")
        keys = [*r.scan_iter(match=f"{prefix}:staff-login:*"), *r.scan_iter(match=f"{prefix}:staff-2fa:*")]
        if keys:
            r.delete(*keys)

    clear()
    yield
    clear()


@pytest.fixture
def now(monkeypatch):
    """The clock the codes are checked against: a list holding the time, to move it on."""
    at = [float(T)]
    monkeypatch.setattr(twofactor, "clock", lambda: at[0])
    return at


@pytest.fixture
def senders_must(app, monkeypatch):
    """The production default: sender, admin and owner accounts must use 2FA."""
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_2FA", SENDERS)


def _user(email: str = STAFF_EMAIL) -> StaffUser:
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email))
    assert user is not None
    return user


def _turn_on(app, email: str = STAFF_EMAIL) -> tuple[str, list[str]]:
    """2FA on for the account (its first code at T), as the setup page does; the secret and codes."""
    secret = twofactor.new_secret()
    with app.app_context():
        codes = twofactor.enable(_user(email), secret, pyotp.TOTP(secret).at(T), now=T)
        db.session.commit()
    return secret, codes


def _code_form(client, code: str):
    """The login's second step, as a browser posts it (the token from a page of the same session)."""
    token = csrf_token(client, "/staff/login")
    return client.post("/staff/login/2fa", data={"code": code, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": STAFF_IP})


def _account_post(client, path: str, form: str, code: str):
    """One of the 2FA page's forms (each has its prefix: setup, regen, off)."""
    token = csrf_token(client, "/staff/")
    return client.post(path, data={f"{form}-code": code, f"{form}-csrf_token": token})


def _actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))


def _error(response) -> str:
    body = response.get_data(as_text=True)
    match = re.search(r'class="(?:flash flash-error|field-error)"[^>]*>([^<]+)<', body)
    assert match, body
    return match.group(1)


# -- the domain: codes, replay, recovery codes --------------------------------------------


def test_setup_needs_a_right_first_code(app, staff):
    secret = twofactor.new_secret()
    totp = pyotp.TOTP(secret)
    with app.app_context():
        user = _user()
        with pytest.raises(twofactor.TwoFactorError, match="not the one your app shows"):
            twofactor.enable(user, secret, totp.at(T - 120), now=T)  # four steps old
        with pytest.raises(twofactor.TwoFactorError):
            twofactor.enable(user, secret, "12345", now=T)
        assert not twofactor.enabled(user) and user.totp_secret is None
        codes = twofactor.enable(user, secret, totp.at(T), now=T)
        assert twofactor.enabled(user) and user.totp_secret == secret
        assert len(codes) == 10 and len(set(codes)) == 10
        assert all(re.fullmatch(r"[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}", c) for c in codes)
        # Kept as SHA-256 hashes only.
        hashes = set(db.session.scalars(sa.select(StaffRecoveryCode.code_hash)))
        assert len(hashes) == 10 and not any(c.replace("-", "") in h for c in codes for h in hashes)


def test_a_wrong_code_is_refused(app, staff):
    secret, _ = _turn_on(app)
    with app.app_context():
        user = _user()
        right = pyotp.TOTP(secret).at(T + 30)
        wrong = f"{(int(right) + 1) % 1_000_000:06d}"
        assert not twofactor.verify(user, wrong, now=T + 30)
        assert not twofactor.verify(user, "abcdef", now=T + 30)
        assert twofactor.verify(user, right, now=T + 30)


def test_a_replayed_code_is_refused(app, staff):
    """The code of the setup step, and then a code used to log in, never work twice."""
    secret, _ = _turn_on(app)
    totp = pyotp.TOTP(secret)
    with app.app_context():
        user = _user()
        assert not twofactor.verify(user, totp.at(T), now=T + 10)  # the step its setup used
        assert twofactor.verify(user, totp.at(T + 30), now=T + 30)
        assert not twofactor.verify(user, totp.at(T + 30), now=T + 45)  # the same step again
        assert user.totp_last_step == (T + 30) // 30


def test_a_code_one_step_old_is_accepted_once(app, staff):
    secret, _ = _turn_on(app)
    totp = pyotp.TOTP(secret)
    with app.app_context():
        user = _user()
        assert twofactor.verify(user, totp.at(T + 60), now=T + 95)  # one step old: a slow typist
        assert not twofactor.verify(user, totp.at(T + 60), now=T + 95)
        assert not twofactor.verify(user, totp.at(T + 30), now=T + 95)  # older than one accepted
        assert twofactor.verify(user, totp.at(T + 90), now=T + 95)  # the current step still works
        assert not twofactor.verify(user, totp.at(T + 150), now=T + 95)  # two steps ahead


def test_each_recovery_code_works_once(app, staff):
    _secret, codes = _turn_on(app)
    with app.app_context():
        user = _user()
        assert not twofactor.use_recovery_code(user, "abcde-fghjk")
        for n, code in enumerate(codes):
            typed = code.upper().replace("-", " ") if n % 2 else code  # as a person may type it
            assert twofactor.use_recovery_code(user, typed), code
            assert not twofactor.use_recovery_code(user, code), code
            assert twofactor.codes_left(user) == 9 - n
        # New codes replace the old: none of the old works, each new one does.
        fresh = twofactor.regenerate_codes(user)
        assert not set(fresh) & set(codes)
        assert twofactor.codes_left(user) == 10
        assert twofactor.use_recovery_code(user, fresh[0])


def test_required_follows_the_role(app, staff, senders_must):
    with app.app_context():
        user = _user()
        for role, must in [(Role.VIEWER, False), (Role.EDITOR, False), (Role.SENDER, True),
                           (Role.ADMIN, True), (Role.OWNER, True)]:
            user.role = role
            assert twofactor.required(user, app.config) is must, role


def test_the_setting_parses_and_refuses_unknown_roles(tmp_path, monkeypatch):
    monkeypatch.delenv("ALERTS_DEV", raising=False)
    for value, roles in [("all", set(Role)), ("none", set()), ("senders", {"sender", "admin", "owner"}),
                         ("viewer, admin", {"viewer", "admin"}), ("OWNER", {"owner"})]:
        monkeypatch.setenv("STAFF_REQUIRE_2FA", value)
        assert load_config(tmp_path)["STAFF_REQUIRE_2FA"] == roles, value
    monkeypatch.setenv("STAFF_REQUIRE_2FA", "sender, boss")
    with pytest.raises(ConfigError, match="unknown role 'boss'"):
        load_config(tmp_path)
    # Unset: senders in production, nobody under `alerts dev` (its one local account).
    monkeypatch.delenv("STAFF_REQUIRE_2FA")
    assert load_config(tmp_path)["STAFF_REQUIRE_2FA"] == SENDERS
    monkeypatch.setenv("ALERTS_DEV", "1")
    assert load_config(tmp_path)["STAFF_REQUIRE_2FA"] == frozenset()
    monkeypatch.setenv("STAFF_REQUIRE_2FA", "all")
    assert load_config(tmp_path)["STAFF_REQUIRE_2FA"] == set(Role)


# -- the login flow ---------------------------------------------------------------------


def test_login_with_2fa_takes_a_code_and_the_password_alone_is_no_login(app, client, staff, now):
    secret, _ = _turn_on(app)
    response = log_in(client, next_url="/staff/actions")
    assert response.status_code == 303 and response.headers["Location"] == "/staff/login/2fa"
    # Password passed, code not yet: every staff page still answers as to nobody logged in.
    assert client.get("/staff/").headers["Location"].startswith("/staff/login?next=")
    assert client.get("/staff/account/2fa").status_code == 302
    token = csrf_token(client, "/staff/login")
    assert client.post("/staff/logout", data={"csrf_token": token}).status_code == 401
    page = client.get("/staff/login/2fa")
    assert page.status_code == 200 and STAFF_EMAIL in page.get_data(as_text=True)

    now[0] = T + 30
    wrong = _code_form(client, f"{(int(pyotp.TOTP(secret).at(T + 30)) + 1) % 1_000_000:06d}")
    assert wrong.status_code == 401 and "not right" in _error(wrong)
    done = _code_form(client, pyotp.TOTP(secret).at(T + 30))
    assert done.status_code == 303 and done.headers["Location"] == "/staff/actions"
    assert client.get("/staff/actions").status_code == 200
    assert _actions(app) == ["login.2fa_failed", "login"]
    with app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "login"))
        assert event.actor == STAFF_EMAIL and event.detail == {"second_factor": "totp"}

    # The same code, in another login, is refused: replay.
    other = app.test_client()
    log_in(other)
    assert _code_form(other, pyotp.TOTP(secret).at(T + 30)).status_code == 401


def test_a_pending_login_reaches_no_staff_page(app, client, staff):
    _turn_on(app)
    log_in(client)
    token = csrf_token(client, "/staff/login")
    checked = 0
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff") or rule.endpoint in OPEN_ENDPOINTS:
            continue
        with app.test_request_context():
            url = url_for(rule.endpoint, **{name: 1 for name in rule.arguments})
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = client.open(url, method=method, data={"csrf_token": token})
            if response.status_code == 302:
                assert response.headers["Location"].startswith("/staff/login?next="), (method, url)
            else:
                assert response.status_code in (401, 403), (method, url, response.status_code)
            checked += 1
    assert checked > 40
    assert client.get("/staff/login/2fa").status_code == 200  # and the code step still waits


def test_wrong_codes_are_rate_limited_per_ip(app, staff, monkeypatch):
    monkeypatch.setitem(app.config, "STAFF_LOGIN_RATE_LIMIT", "2/minute")
    _turn_on(app)
    with app.app_context():
        create_staff("second@example.org", STAFF_PASSWORD)
    _turn_on(app, "second@example.org")
    first, second = app.test_client(), app.test_client()
    log_in(first)
    log_in(second, email="second@example.org")
    assert _code_form(first, "000000").status_code == 401
    assert _code_form(second, "000000").status_code == 401
    assert _code_form(first, "000000").status_code == 429  # the same IP, another account's third try


def test_a_recovery_code_logs_in_once(app, client, staff, now):
    _secret, codes = _turn_on(app)
    log_in(client)
    response = _code_form(client, codes[3].upper())
    assert response.status_code == 303
    assert "9 codes left" in client.get("/staff/").get_data(as_text=True)
    assert _actions(app)[-2:] == ["login.recovery_code_used", "login"]

    again = app.test_client()
    log_in(again)
    assert _code_form(again, codes[3]).status_code == 401
    assert again.get("/staff/").status_code == 302


def test_wrong_codes_lock_the_account_and_end_the_pending_login(app, client, staff, now):
    secret, _ = _turn_on(app)
    limit = app.config["STAFF_LOCKOUT_FAILURES"]
    log_in(client)
    for _ in range(limit - 1):
        assert _code_form(client, "000000").status_code == 401
    locked = _code_form(client, "000000")
    assert locked.status_code == 429 and "locked" in _error(locked)
    # The pending login has ended: even the right code now leads back to the password.
    now[0] = T + 30
    after = _code_form(client, pyotp.TOTP(secret).at(T + 30))
    assert after.status_code == 303 and after.headers["Location"] == "/staff/login"
    assert client.get("/staff/").status_code == 302
    # The right password, from any address, is refused while the lock lasts.
    again = log_in(app.test_client(), ip="198.51.100.50")
    assert again.status_code == 429 and "locked for another" in _error(again)
    assert _actions(app).count("login.2fa_failed") == limit


def test_a_pending_login_expires(app, client, staff, now, monkeypatch):
    from alerts.web.staff import auth

    secret, _ = _turn_on(app)
    log_in(client)
    monkeypatch.setattr(auth, "PENDING_SECONDS", -1)
    now[0] = T + 30
    response = _code_form(client, pyotp.TOTP(secret).at(T + 30))
    assert response.status_code == 303 and response.headers["Location"] == "/staff/login"
    assert "took too long" in client.get("/staff/login").get_data(as_text=True)


def test_a_password_change_ends_a_pending_login(app, client, staff, now):
    from alerts.accounts import end_sessions

    secret, _ = _turn_on(app)
    log_in(client)
    with app.app_context():
        end_sessions(_user().id)
        db.session.commit()
    now[0] = T + 30
    assert _code_form(client, pyotp.TOTP(secret).at(T + 30)).headers["Location"] == "/staff/login"


def test_login_without_2fa_is_recorded_and_failures_too(app, client, staff):
    assert log_in(client, password="not the password").status_code == 401
    assert log_in(client).status_code == 303
    post(client, "/staff/logout")
    with app.app_context():
        events = db.session.execute(sa.select(AuditEvent.action, AuditEvent.actor, AuditEvent.ip,
                                              AuditEvent.detail).order_by(AuditEvent.id)).all()
    assert [e[0] for e in events] == ["login.failed", "login", "logout"]
    assert all(e[1] == STAFF_EMAIL and e[2] == STAFF_IP or e[0] == "logout" for e in events)
    assert "not the password" not in repr(events)


# -- who must, and the grace login ------------------------------------------------------


def test_a_required_role_gets_a_grace_login_confined_to_setup(app, client, staff, senders_must, now):
    with app.app_context():
        db.session.add(Action(slug="kept", title="Kept", call_to_action="Go", kind="petition"))
        db.session.commit()
    assert log_in(client).status_code == 303  # the owner, without 2FA yet: a grace login
    for path in ("/staff/", "/staff/actions", "/staff/alerts/new", "/staff/alerts/1/status.json"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/staff/account/2fa", path
    page = client.get("/staff/account/2fa").get_data(as_text=True)
    assert "must use two-factor login" in page and "data:image/svg+xml" in page
    # A POST elsewhere is refused and changes nothing.
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    with app.app_context():
        action_id = db.session.scalar(sa.select(Action.id))
    refused = client.post(f"/staff/actions/{action_id}/toggle", data={"csrf_token": token})
    assert refused.status_code == 403
    with app.app_context():
        assert db.session.get(Action, action_id).is_open

    # Set up, with the secret the page shows: then every page opens.
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    done = client.post("/staff/account/2fa", data={"setup-code": pyotp.TOTP(secret).at(T),
                                                   "setup-csrf_token": token})
    assert done.status_code == 200, done.get_data(as_text=True)
    body = done.get_data(as_text=True)
    shown = body.split('<textarea id="codes-text"')[1].split("</textarea>")[0]
    assert len(re.findall(r"\b[2-9a-hjkmnp-z]{5}-[2-9a-hjkmnp-z]{5}\b", shown)) == 10
    assert client.get("/staff/actions").status_code == 200
    assert _actions(app)[-1] == "staff.2fa.enable"


def test_a_viewer_logs_in_without_2fa_under_senders(app, client, staff, senders_must):
    with app.app_context():
        create_staff("reader@example.org", STAFF_PASSWORD, role=Role.VIEWER)
    assert log_in(client, email="reader@example.org").status_code == 303
    assert client.get("/staff/").status_code == 200


def test_the_setup_page_refuses_a_wrong_first_code(app, staff_client, now):
    page = staff_client.get("/staff/account/2fa").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    wrong = _account_post(staff_client, "/staff/account/2fa", "setup", pyotp.TOTP(secret).at(T - 300))
    assert wrong.status_code == 400 and "not the one your app shows" in _error(wrong)
    # A reload shows the same key, so the app set up from it still matches.
    assert secret in staff_client.get("/staff/account/2fa").get_data(as_text=True).replace(" ", "")
    with app.app_context():
        assert not twofactor.enabled(_user())
    right = _account_post(staff_client, "/staff/account/2fa", "setup", pyotp.TOTP(secret).at(T))
    assert right.status_code == 200
    with app.app_context():
        assert _user().totp_secret == secret


def test_new_recovery_codes_and_turning_off_need_a_current_code(app, staff_client, now, monkeypatch):
    secret, old = _turn_on(app)
    totp = pyotp.TOTP(secret)
    codes_url, off_url = "/staff/account/2fa/recovery-codes", "/staff/account/2fa/disable"
    assert _account_post(staff_client, codes_url, "regen", "000000").status_code == 400
    now[0] = T + 30
    fresh = _account_post(staff_client, codes_url, "regen", totp.at(T + 30))
    assert fresh.status_code == 200 and old[0] not in fresh.get_data(as_text=True)
    with app.app_context():
        assert not twofactor.use_recovery_code(_user(), old[0])

    # Refused while the role must use it (the owner, under senders), with the reason.
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_2FA", SENDERS)
    now[0] = T + 60
    kept = _account_post(staff_client, off_url, "off", totp.at(T + 60))
    assert kept.status_code == 403 and "must use" in _error(kept)
    monkeypatch.setitem(app.config, "STAFF_REQUIRE_2FA", frozenset())
    assert _account_post(staff_client, off_url, "off", totp.at(T + 30)).status_code == 400  # used already
    off = _account_post(staff_client, off_url, "off", totp.at(T + 60))
    assert off.status_code == 303
    with app.app_context():
        assert not twofactor.enabled(_user()) and twofactor.codes_left(_user()) == 0
    assert _actions(app)[-2:] == ["staff.2fa.recovery_codes", "staff.2fa.disable"]
    again = log_in(app.test_client())  # the password alone, again
    assert again.status_code == 303 and again.headers["Location"] == "/staff/"


def test_an_operator_resets_a_lost_phone(app, client, staff, senders_must):
    _turn_on(app)
    log_in(client)  # a pending login, as the person stuck without their phone has
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["reset-2fa", "nobody@example.org"])
    assert unknown.exit_code == 2 and "no staff account nobody@example.org" in unknown.output
    done = runner.invoke(args=["reset-2fa", STAFF_EMAIL.upper()])
    assert done.exit_code == 0 and "reset for staff@example.org" in done.output, done.output
    with app.app_context():
        assert not twofactor.enabled(_user()) and twofactor.codes_left(_user()) == 0
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "staff.2fa.reset"))
        assert event.actor_kind == "cli" and event.target == STAFF_EMAIL
    assert client.get("/staff/login/2fa").headers["Location"] == "/staff/login"  # its sessions ended
    # The password logs in again, confined to setting it up anew (the owner must use it).
    assert log_in(client).headers["Location"] == "/staff/"
    assert client.get("/staff/").headers["Location"] == "/staff/account/2fa"
    assert "nothing to reset" in runner.invoke(args=["reset-2fa", STAFF_EMAIL]).output


def test_an_admin_resets_another_account(app, staff, senders_must, now):
    with app.app_context():
        create_staff("admin@example.org", STAFF_PASSWORD, role=Role.ADMIN)
        create_staff("editor@example.org", STAFF_PASSWORD, role=Role.EDITOR)
        ids = {u.email: u.id for u in db.session.scalars(sa.select(StaffUser))}
    _turn_on(app, "editor@example.org")
    admin_secret, _ = _turn_on(app, "admin@example.org")
    stuck = app.test_client()
    log_in(stuck, email="editor@example.org")  # a pending login, which the reset ends
    admin = app.test_client()
    log_in(admin, email="admin@example.org")
    now[0] = T + 30
    assert _code_form(admin, pyotp.TOTP(admin_secret).at(T + 30)).status_code == 303

    refused = post(admin, f"/staff/staff/{ids[STAFF_EMAIL]}/2fa/reset")  # the owner: above an admin
    assert refused.status_code == 403 and "only an owner" in refused.get_data(as_text=True)
    assert post(admin, "/staff/staff/999999/2fa/reset").status_code == 404
    done = post(admin, f"/staff/staff/{ids['editor@example.org']}/2fa/reset", {"next": "/staff/actions"})
    assert done.status_code == 303 and done.headers["Location"] == "/staff/actions"
    with app.app_context():
        assert not twofactor.enabled(_user("editor@example.org"))
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "staff.2fa.reset"))
        assert (event.actor, event.target) == ("admin@example.org", "editor@example.org")
    assert stuck.get("/staff/login/2fa").headers["Location"] == "/staff/login"
    # Without the staff permission, the gate answers 403 before the view.
    editor = app.test_client()
    assert log_in(editor, email="editor@example.org").headers["Location"] == "/staff/"
    assert post(editor, f"/staff/staff/{ids['admin@example.org']}/2fa/reset").status_code == 403
    with app.app_context():
        assert twofactor.enabled(_user("admin@example.org"))
