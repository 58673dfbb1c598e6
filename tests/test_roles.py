"""Staff roles: what each may reach (a matrix over every staff endpoint), the owner rules,
disabled accounts, password changes, invitations, and a navigation that shows only what a role
may use."""

from __future__ import annotations

import re
import time

import pytest
import sqlalchemy as sa
from werkzeug.routing.converters import NumberConverter

from alerts import accounts
from alerts.extensions import db
from alerts.models import AuditEvent, StaffRecoveryCode, StaffUser
from alerts.permissions import Role
from alerts.web.staff.blueprint import ENDPOINT_PERMISSIONS, OPEN_ENDPOINTS
from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, csrf_token, log_in, post

ROLES = ("viewer", "editor", "sender", "admin", "owner")

# The contract, stated here by hand (not read from the route table): the least role that may
# use each staff endpoint. viewer reads; editor composes and sends tests; sender sends and
# schedules; admin manages people's data and staff accounts; owner also API tokens and webhooks.
# Logging in and out is recorded too (tests/test_twofactor.py); these tests count the rest.
NOT_LOGINS = sa.and_(AuditEvent.action.not_like("login%"), AuditEvent.action != "logout")

LEAST_ROLE: dict[str, str] = {
    "staff.logout": "viewer",
    "staff.dashboard": "viewer",
    "staff.dashboard_charts_part": "viewer",
    "staff.dashboard_charts_page": "viewer",
    "staff.account": "viewer",
    "staff.account_password": "viewer",
    "staff.actions": "viewer",
    "staff.action_new": "editor",
    "staff.action_edit": "editor",
    "staff.action_toggle": "editor",
    "staff.action_move": "editor",
    "staff.action_image": "editor",
    "staff.action_image_remove": "editor",
    "staff.action_signatures": "viewer",
    "staff.action_signatures_csv": "admin",
    "staff.action_signatures_import": "admin",
    "staff.action_calls_csv": "admin",
    "staff.alerts": "viewer",
    "staff.alert_audience": "viewer",
    "staff.alert_new": "editor",
    "staff.alert_edit": "editor",
    "staff.alert": "viewer",
    "staff.alert_preview_html": "viewer",
    "staff.alert_preview_text": "viewer",
    "staff.alert_test": "editor",
    "staff.alert_schedule": "sender",
    "staff.alert_unschedule": "sender",
    "staff.alert_remind": "editor",
    "staff.alert_send": "sender",
    "staff.alert_recipients": "viewer",
    "staff.alert_status": "viewer",
    "staff.alert_pause": "sender",
    "staff.alert_resume": "sender",
    "staff.alert_cancel": "sender",
    "staff.alert_report": "viewer",
    "staff.subscribers": "viewer",
    "staff.data_import": "admin",
    "staff.data_export": "admin",
    "staff.data_subscriber": "viewer",
    "staff.data_subscriber_json": "admin",
    "staff.data_subscriber_erase": "admin",
    "staff.data_subscriber_edit": "admin",
    "staff.fields": "viewer",
    "staff.field_add": "admin",
    "staff.field_edit": "admin",
    "staff.field_remove": "admin",
    "staff.suppressions": "viewer",
    "staff.suppression_add": "admin",
    "staff.suppression_lift": "admin",
    "staff.bounce_events": "viewer",
    "staff.welcome_email": "editor",
    "staff.journeys": "viewer",
    "staff.journey_new": "editor",
    "staff.journey": "viewer",
    "staff.journey_pause": "sender",
    "staff.journey_resume": "sender",
    "staff.journey_step_new": "editor",
    "staff.journey_step_edit": "editor",
    "staff.journey_step_remove": "editor",
    "staff.api_tokens": "owner",
    "staff.api_token_create": "owner",
    "staff.api_token_revoke": "owner",
    "staff.webhooks": "owner",
    "staff.webhook_add": "owner",
    "staff.webhook": "owner",
    "staff.webhook_remove": "owner",
    "staff.webhook_enable": "owner",
    "staff.webhook_test": "owner",
    "staff.webhook_redeliver": "owner",
    "staff.staff_accounts": "admin",
    "staff.staff_invite": "admin",
    "staff.staff_invite_resend": "admin",
    "staff.staff_role": "admin",
    "staff.staff_disable": "admin",
    "staff.staff_enable": "admin",
    "staff.staff_remove": "admin",
    "staff.staff_2fa_reset": "admin",
    "staff.account_2fa": "viewer",
    "staff.account_2fa_enable": "viewer",
    "staff.account_2fa_disable": "viewer",
    "staff.account_2fa_recovery_codes": "viewer",
    "staff.alert_approval_request": "editor",
    "staff.alert_approve": "sender",
    "staff.audit_trail": "admin",
    "staff.audit_trail_csv": "admin",
}
# Another helper's endpoints join the table with their own line; until then a staff endpoint
# missing here fails `test_every_staff_endpoint_is_in_the_contract`.

MISSING_ID = 999_999  # no row has it: an allowed request answers 404 and changes nothing


def _staff_requests(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every staff rule but the open ones; logout comes last."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("staff.") or rule.endpoint in OPEN_ENDPOINTS:
            continue
        values = {arg: MISSING_ID if isinstance(conv, NumberConverter) else "x"
                  for arg, conv in rule._converters.items()}
        path = rule.build(values)[1]
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            found.append((rule.endpoint, method, path))
    return sorted(found, key=lambda r: (r[0] == "staff.logout", r))


def _row_counts() -> dict[str, int]:
    return {t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t))
            for t in db.metadata.sorted_tables}


def test_every_staff_endpoint_is_in_the_contract(app):
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("staff.")}
    gated = endpoints - OPEN_ENDPOINTS
    undeclared = sorted(gated - set(ENDPOINT_PERMISSIONS))
    assert not undeclared, f"no permission declared: {undeclared}"
    assert gated == set(LEAST_ROLE), f"add to LEAST_ROLE: {sorted(gated - set(LEAST_ROLE))}"


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_what_it_may_and_nothing_else(role, app, staff, staff_client_as):
    """Every staff endpoint, by GET and by POST (with a valid CSRF token): a role outside the
    endpoint's least role answers 403 and changes no table's rows; inside it, never 403."""
    client = staff_client_as(role)
    rank = ROLES.index(role)
    checked = 0
    for endpoint, method, path in _staff_requests(app):
        allowed = rank >= ROLES.index(LEAST_ROLE[endpoint])
        with app.app_context():
            before = _row_counts()
        if method == "GET":
            response = client.get(path)
        else:
            response = client.post(path, data={"csrf_token": csrf_token(client, "/staff/account")})
        status = response.status_code
        if allowed:
            assert status != 403, f"{role} {method} {path}: 403, but {endpoint} is allowed"
        else:
            assert status == 403, f"{role} {method} {path}: {status}, but {endpoint} is not allowed"
            with app.app_context():
                assert _row_counts() == before, f"{role} {method} {path} changed rows"
        checked += 1
    assert checked > 2 * len(LEAST_ROLE) // 2


# -- the owner rules -------------------------------------------------------------------------


def _user(email: str) -> StaffUser:
    return db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email))


def _id(app, email: str) -> int:
    with app.app_context():
        return _user(email).id


def test_the_last_owner_cannot_be_demoted_disabled_or_removed(app, staff, staff_client):
    owner_id = _id(app, STAFF_EMAIL)
    for path, data in ((f"/staff/staff/{owner_id}/role", {"role": "admin"}),
                       (f"/staff/staff/{owner_id}/disable", {}), (f"/staff/staff/{owner_id}/remove", {})):
        response = post(staff_client, path, data, page="/staff/staff")
        assert response.status_code == 409, path
        assert "last owner" in response.get_data(as_text=True)
    with app.app_context():
        user = _user(STAFF_EMAIL)
        assert (user.role, user.disabled_at) == ("owner", None)
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(NOT_LOGINS)) == 0
    with app.app_context(), pytest.raises(accounts.LastOwner):
        accounts.change_role(_user(STAFF_EMAIL), Role.VIEWER)


def test_a_second_owner_lets_the_first_step_down(app, staff, staff_client):
    with app.app_context():
        create_staff("other-owner@example.org", STAFF_PASSWORD, role=Role.OWNER)
    response = post(staff_client, f"/staff/staff/{_id(app, STAFF_EMAIL)}/role", {"role": "admin"},
                    page="/staff/staff")
    assert response.status_code == 303
    with app.app_context():
        assert _user(STAFF_EMAIL).role == "admin"
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "staff.role"))
        assert (event.action, event.target, event.detail) == (
            "staff.role", STAFF_EMAIL, {"before": "owner", "after": "admin"})


def test_an_admin_manages_others_but_not_an_owner(app, staff, staff_client_as):
    admin = staff_client_as("admin")
    with app.app_context():
        create_staff("ed@example.org", STAFF_PASSWORD, role=Role.EDITOR)
    owner_id, ed_id = _id(app, STAFF_EMAIL), _id(app, "ed@example.org")
    page = admin.get("/staff/staff").get_data(as_text=True)
    assert "Only an owner can give or take away the" in page
    assert f'action="/staff/staff/{owner_id}/disable"' not in page
    for path, data in ((f"/staff/staff/{owner_id}/disable", {}),
                       (f"/staff/staff/{owner_id}/role", {"role": "editor"}),
                       (f"/staff/staff/{owner_id}/remove", {}),
                       (f"/staff/staff/{ed_id}/role", {"role": "owner"}),
                       ("/staff/staff/invite", {"email": "new@example.org", "role": "owner"})):
        response = post(admin, path, data, page="/staff/staff")
        assert response.status_code == 403, path
        assert "only an owner" in response.get_data(as_text=True).lower()
    with app.app_context():
        assert (_user(STAFF_EMAIL).role, _user(STAFF_EMAIL).disabled_at) == ("owner", None)
        assert _user("ed@example.org").role == "editor" and _user("new@example.org") is None
    changed = post(admin, f"/staff/staff/{ed_id}/role", {"role": "sender"}, page="/staff/staff")
    assert changed.status_code == 303
    with app.app_context():
        assert _user("ed@example.org").role == "sender"


def test_an_unknown_role_is_refused_naming_the_choices(app, staff, staff_client):
    with app.app_context():
        create_staff("ed@example.org", STAFF_PASSWORD, role=Role.EDITOR)
    response = post(staff_client, f"/staff/staff/{_id(app, 'ed@example.org')}/role", {"role": "god"},
                    page="/staff/staff")
    assert response.status_code == 400
    assert "viewer, editor, sender, admin, owner" in response.get_data(as_text=True)


# -- disabled accounts, removal ----------------------------------------------------------------


def test_a_disabled_account_cannot_log_in_and_its_live_session_ends(app, staff_client, staff_client_as):
    editor = staff_client_as("editor")
    assert editor.get("/staff/").status_code == 200
    editor_id = _id(app, "editor@example.org")
    response = post(staff_client, f"/staff/staff/{editor_id}/disable", page="/staff/staff")
    assert response.status_code == 303
    assert editor.get("/staff/").status_code == 302  # to the login page: the session is over
    again = app.test_client()
    refused = log_in(again, email="editor@example.org")
    assert refused.status_code == 401
    assert "match a staff account" in refused.get_data(as_text=True)
    with app.app_context():
        assert accounts.check_password("editor@example.org", STAFF_PASSWORD) is None
        actions = list(db.session.scalars(sa.select(AuditEvent.action).where(NOT_LOGINS)))
        assert actions == ["staff.disable"]
    assert post(staff_client, f"/staff/staff/{_id(app, 'editor@example.org')}/enable",
                page="/staff/staff").status_code == 303
    assert log_in(app.test_client(), email="editor@example.org").status_code == 303


def test_a_disabled_session_ends_even_if_its_epoch_were_current(app, staff, staff_client):
    """auth.current_staff() itself refuses a disabled account, not only the epoch bump."""
    with app.app_context():
        db.session.execute(sa.update(StaffUser).values(disabled_at=sa.func.current_timestamp()))
        db.session.commit()
    assert staff_client.get("/staff/").status_code == 302


def test_removing_an_account_deletes_it_and_its_recovery_codes(app, staff, staff_client):
    with app.app_context():
        create_staff("ed@example.org", STAFF_PASSWORD, role=Role.EDITOR)
    ed_id = _id(app, "ed@example.org")
    with app.app_context():
        db.session.add(StaffRecoveryCode(staff_id=ed_id, code_hash="h" * 64))
        db.session.commit()
    confirm = staff_client.get(f"/staff/staff/{ed_id}/remove")
    assert confirm.status_code == 200 and "Remove ed@example.org?" in confirm.get_data(as_text=True)
    with app.app_context():
        assert _user("ed@example.org") is not None  # looking changes nothing
    assert post(staff_client, f"/staff/staff/{ed_id}/remove", page="/staff/staff").status_code == 303
    with app.app_context():
        assert _user("ed@example.org") is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffRecoveryCode)) == 0
        assert list(db.session.scalars(sa.select(AuditEvent.action).where(NOT_LOGINS))) == ["staff.remove"]


# -- your account: the password ------------------------------------------------------------------

NEW_PASSWORD = "ochre lantern cobble waltz"


def test_changing_your_password_ends_your_other_sessions_and_keeps_this_one(app, staff, staff_client):
    other = app.test_client()
    assert log_in(other).status_code == 303
    wrong = post(staff_client, "/staff/account/password",
                 {"current": "not it at all", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                 page="/staff/account")
    assert wrong.status_code == 400 and "not your current password" in wrong.get_data(as_text=True)
    assert other.get("/staff/").status_code == 200
    done = post(staff_client, "/staff/account/password",
                {"current": STAFF_PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
                page="/staff/account")
    assert done.status_code == 303
    assert staff_client.get("/staff/account").status_code == 200  # this session goes on
    assert other.get("/staff/").status_code == 302  # the other one has ended
    with app.app_context():
        assert accounts.check_password(STAFF_EMAIL, NEW_PASSWORD) is not None
        assert list(db.session.scalars(sa.select(AuditEvent.action).where(NOT_LOGINS))) == ["staff.password"]


def test_a_weak_new_password_is_refused_saying_why(app, staff, staff_client):
    response = post(staff_client, "/staff/account/password",
                    {"current": STAFF_PASSWORD, "password": "short", "confirm": "short"},
                    page="/staff/account")
    assert response.status_code == 400 and "too short" in response.get_data(as_text=True)


# -- invitations ------------------------------------------------------------------------------


def _invite(app, client, smtp, email="new@example.org", role="sender") -> str:
    smtp.handler.clear()
    response = post(client, "/staff/staff/invite", {"email": email, "role": role}, page="/staff/staff")
    assert response.status_code == 303, response.get_data(as_text=True)
    (received,) = smtp.handler.wait_for(1, timeout=10)
    assert received.rcpt_tos == [email]
    text = received.message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+(/staff/invite/\S+)", text)
    assert match, text
    return match.group(1)


def test_an_invitation_sets_a_password_once_and_logs_in(app, staff, staff_client, smtp):
    link = _invite(app, staff_client, smtp)
    with app.app_context():
        user = _user("new@example.org")
        assert (user.role, user.invited_by, accounts.pending(user)) == ("sender", STAFF_EMAIL, True)
        assert accounts.check_password("new@example.org", "!") is None  # no usable password
    invitee = app.test_client()
    form = invitee.get(link)
    assert form.status_code == 200 and "Set your password" in form.get_data(as_text=True)
    data = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD, "csrf_token": csrf_token(invitee, link)}
    done = invitee.post(link, data=data)
    assert done.status_code == 303
    assert invitee.get("/staff/").status_code == 200  # logged in
    used = app.test_client().get(link)
    assert used.status_code == 400 and "used already" in used.get_data(as_text=True)
    assert log_in(app.test_client(), email="new@example.org", password=NEW_PASSWORD).status_code == 303
    with app.app_context():
        actions = sa.select(AuditEvent.action).where(NOT_LOGINS).order_by(AuditEvent.id)
        assert list(db.session.scalars(actions)) == [
            "staff.invite", "staff.invite.accept"]


def test_an_invitation_expires(app, staff, staff_client, smtp, monkeypatch):
    link = _invite(app, staff_client, smtp)
    monkeypatch.setitem(app.config, "STAFF_INVITE_MAX_AGE_SECONDS", 60)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    expired = app.test_client().get(link)
    assert expired.status_code == 400 and "expired" in expired.get_data(as_text=True)


def test_a_tampered_invitation_is_refused(app, staff, staff_client, smtp):
    link = _invite(app, staff_client, smtp)
    response = app.test_client().get(link[:-3] + "abc")
    assert response.status_code == 400 and "not valid" in response.get_data(as_text=True)


def test_a_disabled_invitation_is_dead(app, staff, staff_client, smtp):
    link = _invite(app, staff_client, smtp)
    assert post(staff_client, f"/staff/staff/{_id(app, 'new@example.org')}/disable",
                page="/staff/staff").status_code == 303
    assert app.test_client().get(link).status_code == 400


def test_guessing_invitation_links_is_throttled_per_address(app, staff, staff_client, smtp):
    link = _invite(app, staff_client, smtp)
    guesser = app.test_client()
    there = {"REMOTE_ADDR": "198.51.100.99"}
    for _ in range(10):
        assert guesser.get("/staff/invite/guess", environ_base=there).status_code == 400
    throttled = guesser.get(link, environ_base=there)
    assert throttled.status_code == 429
    assert app.test_client().get(link, environ_base={"REMOTE_ADDR": "198.51.100.100"}).status_code == 200


# -- navigation --------------------------------------------------------------------------------


def test_an_editors_pages_offer_no_send_import_tokens_or_staff(app, staff, staff_client_as):
    from tests.helpers import save_alert

    with app.app_context():
        alert = save_alert(None, subject="Act now", intro_md="Read this.")
        alert_id = alert.id
    editor = staff_client_as("editor")
    nav = editor.get("/staff/").get_data(as_text=True)
    for absent in ("/staff/api-tokens", "/staff/webhooks", "/staff/staff\"", "/staff/subscribers/import"):
        assert absent not in nav, absent
    assert "/staff/account" in nav and "/staff/welcome" in nav
    page = editor.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert f"/staff/alerts/{alert_id}/send" not in page and f"/staff/alerts/{alert_id}/schedule" not in page
    assert f"/staff/alerts/{alert_id}/test" in page
    subscribers = editor.get("/staff/subscribers").get_data(as_text=True)
    assert "/staff/subscribers/import" not in subscribers
    assert "/staff/subscribers/export.csv" not in subscribers


def test_an_owners_nav_has_everything(app, staff, staff_client):
    nav = staff_client.get("/staff/").get_data(as_text=True)
    for present in ("/staff/api-tokens", "/staff/webhooks", 'href="/staff/staff"', "/staff/account"):
        assert present in nav, present


# -- the command line ---------------------------------------------------------------------------


def _cli(app, *args: str, password: str | None = None):
    runner = app.test_cli_runner()
    with app.app_context():
        return runner.invoke(args=list(args), input=None if password is None else password + "\n")


def test_create_staff_takes_a_role_and_refuses_an_unknown_one(app):
    first = _cli(app, "create-staff", "boss@example.org", "--password-stdin", password=STAFF_PASSWORD)
    assert first.exit_code == 0 and "(owner)" in first.output
    sender = _cli(app, "create-staff", "s@example.org", "--role", "sender", "--password-stdin",
                  password=STAFF_PASSWORD)
    assert sender.exit_code == 0 and "(sender)" in sender.output
    plain = _cli(app, "create-staff", "e@example.org", "--password-stdin", password=STAFF_PASSWORD)
    assert "(editor)" in plain.output
    bad = _cli(app, "create-staff", "x@example.org", "--role", "god", "--password-stdin",
               password=STAFF_PASSWORD)
    assert bad.exit_code == 2
    assert "'god' is not one of 'viewer', 'editor', 'sender', 'admin', 'owner'" in bad.output
    with app.app_context():
        assert [(e.action, e.target, e.actor_kind) for e in db.session.scalars(
            sa.select(AuditEvent).where(NOT_LOGINS).order_by(AuditEvent.id))] == [
            ("staff.create", "boss@example.org", "cli"), ("staff.create", "s@example.org", "cli"),
            ("staff.create", "e@example.org", "cli")]
        assert _user("x@example.org") is None


def test_the_first_account_made_at_the_cli_is_the_owner(app):
    result = _cli(app, "create-staff", "a@example.org", "--role", "viewer", "--password-stdin",
                  password=STAFF_PASSWORD)
    assert result.exit_code == 2 and "the first account is the owner" in result.output


def test_staff_commands_list_set_role_disable_enable(app, staff):
    with app.app_context():
        create_staff("ed@example.org", STAFF_PASSWORD, role=Role.EDITOR)
    assert _cli(app, "staff", "set-role", "ed@example.org", "admin").exit_code == 0
    assert _cli(app, "staff", "disable", "ed@example.org").exit_code == 0
    listing = _cli(app, "staff", "list").output
    assert re.search(r"ed@example.org\s+admin\s+off\s+never\s+disabled", listing), listing
    assert re.search(rf"{STAFF_EMAIL}\s+owner\s+off", listing), listing
    assert _cli(app, "staff", "enable", "ed@example.org").exit_code == 0
    last = _cli(app, "staff", "set-role", STAFF_EMAIL, "viewer")
    assert last.exit_code == 1 and "Error: staff@example.org is the last owner" in last.output
    nobody = _cli(app, "staff", "disable", "nobody@example.org")
    assert nobody.exit_code == 1 and "there is no staff account nobody@example.org" in nobody.output
    with app.app_context():
        assert (_user("ed@example.org").role, _user("ed@example.org").disabled_at) == ("admin", None)
        actions = sa.select(AuditEvent.action).where(NOT_LOGINS).order_by(AuditEvent.id)
        assert list(db.session.scalars(actions)) == [
            "staff.role", "staff.disable", "staff.enable"]


# -- API tokens' scopes ------------------------------------------------------------------------


def test_api_scopes_are_stated_and_checked_in_one_place(app):
    """Every API endpoint needs read (what only reads) or write; the check is made once, in the
    blueprint's gate, so no view can forget it or check it differently."""
    from pathlib import Path

    from alerts.web.api import views

    sources = {p: p.read_text() for p in Path(views.__file__).parents[2].rglob("*.py")}
    checks = [p.name for p, text in sources.items() for _ in range(text.count("in caller.scopes"))]
    assert checks == ["views.py"]
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("api.") or rule.endpoint in ("api.openapi_json",):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            expected = "read" if method == "GET" or rule.endpoint == "api.count_audience" else "write"
            assert views.scope_needed(method, rule.endpoint) == expected, (method, rule.rule)
    assert views.scope_needed("POST", "api.count_audience") == "read"


def test_a_viewer_sees_no_compose_controls_and_a_sender_no_data_controls(app, staff, staff_client_as):
    from alerts.models import Subscriber
    from tests.helpers import save_alert, seed_actions

    with app.app_context():
        seed_actions()
        alert_id = save_alert(None, subject="Act now", intro_md="Read this.").id
        sub = Subscriber(email="reader@example.org", status="confirmed")
        db.session.add(sub)
        db.session.commit()
        sub_id = sub.id
    viewer = staff_client_as("viewer")
    alert_page = viewer.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    for absent in (f"/staff/alerts/{alert_id}/edit", f"/staff/alerts/{alert_id}/test", "/staff/welcome"):
        assert absent not in alert_page, absent
    assert "/staff/actions/new" not in viewer.get("/staff/actions").get_data(as_text=True)
    assert "/staff/alerts/new" not in viewer.get("/staff/alerts").get_data(as_text=True)
    sender = staff_client_as("sender")
    assert f"/staff/alerts/{alert_id}/send" in sender.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    person = sender.get(f"/staff/subscribers/{sub_id}").get_data(as_text=True)
    assert f"/staff/subscribers/{sub_id}/erase" not in person and "data.json" not in person
    assert 'id="add"' not in sender.get("/staff/suppressions").get_data(as_text=True)
    admin = staff_client_as("admin")
    nav = admin.get("/staff/").get_data(as_text=True)
    assert "/staff/api-tokens" not in nav and "/staff/webhooks" not in nav and 'href="/staff/staff"' in nav
    assert f"/staff/subscribers/{sub_id}/erase" in admin.get(f"/staff/subscribers/{sub_id}").text


def test_inviting_an_existing_address_is_refused(app, staff, staff_client):
    response = post(staff_client, "/staff/staff/invite", {"email": STAFF_EMAIL, "role": "editor"},
                    page="/staff/staff")
    assert response.status_code == 409 and "already exists" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 1


def test_a_disabled_or_invited_account_costs_a_full_password_check(app, staff, ctx, monkeypatch):
    """Checked against the dummy hash, as an unknown address is: no quick refusal tells it exists."""
    hasher, errors = accounts._argon2()
    checked: list[str] = []

    class Recording:
        def verify(self, hashed: str, password: str) -> bool:
            checked.append(hashed)
            return hasher.verify(hashed, password)

        def __getattr__(self, name: str):
            return getattr(hasher, name)

    invited = accounts.invite("new@example.org", Role.EDITOR, STAFF_EMAIL)
    _user(STAFF_EMAIL).disabled_at = sa.func.current_timestamp()
    db.session.commit()
    monkeypatch.setattr(accounts, "_argon2", lambda: (Recording(), errors))
    assert accounts.check_password(STAFF_EMAIL, STAFF_PASSWORD) is None
    assert accounts.check_password(invited.email, accounts.UNUSABLE_PASSWORD) is None
    assert accounts.check_password("nobody@example.org", STAFF_PASSWORD) is None
    assert checked == [accounts._dummy_hash()] * 3
