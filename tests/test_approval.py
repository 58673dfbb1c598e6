"""Two-person approval: a blast to APPROVAL_MIN_RECIPIENTS or more starts only once a second
staff member with send permission approved what it sends; a change after that voids it.

The threshold is 3 here (the rule is the same at 1,000; `test_blast_fill` starts a blast of
1,000 after its approval), so the lists stay small."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from alerts.blasts import abtest, approval, control, scheduling
from alerts.blasts.compose import save_alert as edit_alert
from alerts.extensions import db
from alerts.models import Alert, AlertState, AuditEvent, StaffUser, utcnow
from alerts.permissions import Role
from tests.helpers import (
    STAFF_EMAIL,
    add_confirmed,
    approve,
    blasts,
    create_staff,
    csrf_token,
    log_in,
    make_alert,
    post,
    save_alert,
    seed_actions,
)

SENDER = "sender@example.org"
SENDER_PASSWORD = "sender password 1"
DRAFTER = "drafter@example.org"


@pytest.fixture(autouse=True)
def _threshold(app, monkeypatch):
    monkeypatch.setitem(app.config, "APPROVAL_MIN_RECIPIENTS", 3)


def _draft(created_by: str = DRAFTER, subscribers: int = 3) -> int:
    """A draft by `created_by` to `subscribers` people (3: at the threshold)."""
    seed_actions()
    if subscribers:
        add_confirmed(subscribers)
    return save_alert(None, subject="Act now for kids", intro_md="Thank you for **standing up**.",
                      preheader="Two minutes", created_by=created_by).id


def _sender(email: str = SENDER, role: Role = Role.SENDER) -> str:
    create_staff(email, SENDER_PASSWORD, role=role)
    return email


def _alert(alert_id: int) -> Alert:
    db.session.expire_all()
    return db.session.get_one(Alert, alert_id)


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


# -- the domain: who may approve, what voids it, where a start is refused ------------------------


def test_under_the_threshold_no_approval_is_needed(app, ctx):
    alert_id = _draft(subscribers=2)
    assert approval.standing(_alert(alert_id), 2).state == "not_needed"
    assert blasts.launch(alert_id) == 2


def test_at_the_threshold_a_start_is_refused_until_a_second_sender_approves(app, ctx):
    alert_id = _draft()
    with pytest.raises(approval.ApprovalError, match=r"needs the approval of a second staff member with "
                       r"send permission: it goes to 3 recipients, and a blast to 3 or more needs one"):
        blasts.launch(alert_id)
    db.session.rollback()
    assert _alert(alert_id).state == AlertState.DRAFT
    approve(alert_id)
    assert approval.standing(_alert(alert_id), 3).state == "approved"
    assert blasts.launch(alert_id) == 3


def test_approving_your_own_alert_is_refused(app, ctx):
    alert_id = _draft(created_by=_sender())
    with pytest.raises(approval.ApprovalError, match="created this alert"):
        approval.approve(alert_id, SENDER.upper(), approval.digest(_alert(alert_id)), 3)
    db.session.rollback()
    assert _alert(alert_id).approved_by is None


def test_a_sender_who_edited_someone_elses_draft_cannot_approve_it(app, client):
    """The second person wrote none of it: an edit on the staff page (on the audit trail)
    makes its editor a first person too, though another drafted it."""
    with app.app_context():
        alert_id = _draft()
        _sender()
    assert log_in(client, email=SENDER, password=SENDER_PASSWORD).status_code == 303
    edited = post(client, f"/staff/alerts/{alert_id}/edit",
                  {"subject": "Act now for every kid", "intro_md": "Thank you.",
                   "actions": [db_slug(app)]}, page=f"/staff/alerts/{alert_id}/edit")
    assert edited.status_code == 303
    with app.app_context():
        with pytest.raises(approval.ApprovalError, match="edited this alert"):
            approval.approve(alert_id, SENDER, approval.digest(_alert(alert_id)), 3)
        db.session.rollback()
        assert _alert(alert_id).approved_by is None
        approve(alert_id)  # a third person, who wrote none of it, may
        assert _alert(alert_id).approved_by not in (None, SENDER)


def db_slug(app) -> str:
    from alerts.models import Action

    with app.app_context():
        return db.session.scalar(sa.select(Action.slug).where(Action.is_open).order_by(Action.position))


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_a_viewer_or_an_editor_cannot_approve(app, ctx, role):
    alert_id = _draft()
    who = _sender(f"{role}@example.org", role)
    with pytest.raises(approval.ApprovalError, match="approving needs send permission"):
        approval.approve(alert_id, who, approval.digest(_alert(alert_id)), 3)


def test_a_disabled_sender_or_no_account_cannot_approve(app, ctx):
    alert_id = _draft()
    _sender()
    db.session.scalar(sa.select(StaffUser).where(StaffUser.email == SENDER)).disabled_at = utcnow()
    db.session.commit()
    digest = approval.digest(_alert(alert_id))
    with pytest.raises(approval.ApprovalError, match="is disabled"):
        approval.approve(alert_id, SENDER, digest, 3)
    with pytest.raises(approval.ApprovalError, match="there is no staff account"):
        approval.approve(alert_id, "nobody@example.org", digest, 3)


def _change_subject(alert: Alert) -> None:
    edit_alert(alert, subject="Another subject", intro_md=alert.intro_md, preheader=alert.preheader,
               audience=alert.audience)


def _change_intro(alert: Alert) -> None:
    edit_alert(alert, subject=alert.subject, intro_md="Other words.", preheader=alert.preheader,
               audience=alert.audience)


def _change_audience(alert: Alert) -> None:
    edit_alert(alert, subject=alert.subject, intro_md=alert.intro_md, preheader=alert.preheader,
               audience={"include_acted": True})  # the same three people: only the rules differ


def _change_actions(alert: Alert) -> None:
    edit_alert(alert, subject=alert.subject, intro_md=alert.intro_md, preheader=alert.preheader,
               action_slugs=[alert.actions[0].slug], audience=alert.audience)


def _change_schedule(alert: Alert) -> None:
    scheduling.schedule(alert.id, utcnow() + timedelta(days=1))


def _change_ab_from_name(alert: Alert) -> None:
    abtest.configure(alert, subjects=[alert.subject, "Or this"], from_names=["Ana", "Ben"],
                     sample_pct=10, wait_minutes=60)


@pytest.mark.parametrize("change, part", [
    (_change_subject, "content"), (_change_intro, "content"), (_change_actions, "content"),
    (_change_audience, "audience"), (_change_schedule, "schedule"), (_change_ab_from_name, "sender"),
], ids=["subject", "intro", "actions", "audience", "schedule", "a/b from name"])
def test_a_change_after_approval_voids_it_naming_what_changed(app, ctx, change, part):
    alert_id = _draft()
    approve(alert_id)
    change(_alert(alert_id))
    db.session.commit()
    standing = approval.standing(_alert(alert_id), None)
    assert standing.state == "void"
    assert part in standing.changed
    words = rf"its approval is void: .*{re.escape(approval.PART_WORDS[part])}.* changed after approver@"
    with pytest.raises(approval.ApprovalError, match=words):
        control.launch(alert_id)
    db.session.rollback()
    assert _alert(alert_id).state == AlertState.DRAFT


def test_a_change_of_mail_from_voids_the_approval(app, ctx, monkeypatch):
    alert_id = _draft()
    approve(alert_id)
    monkeypatch.setitem(app.config, "MAIL_FROM", "Someone Else <else@example.org>")
    assert approval.standing(_alert(alert_id), 3).changed == ["sender"]
    with pytest.raises(approval.ApprovalError, match="the sender changed"):
        control.launch(alert_id)


def test_an_approval_of_an_older_version_is_refused(app, ctx):
    """The race: the approver's page showed one version, an edit landed, then they clicked."""
    alert_id = _draft()
    _sender()
    seen = approval.digest(_alert(alert_id))
    _change_subject(_alert(alert_id))
    db.session.commit()
    with pytest.raises(approval.ApprovalError, match="changed after this approval page was shown"):
        approval.approve(alert_id, SENDER, seen, 3)
    db.session.rollback()
    assert _alert(alert_id).approved_digest is None


# -- beat: a scheduled start without its approval -----------------------------------------------


def _due(alert_id: int) -> None:
    """Scheduled a minute ago (as if the time came while nobody approved it)."""
    _alert(alert_id).scheduled_for = utcnow() - timedelta(minutes=1)
    db.session.commit()


def test_a_scheduled_blast_without_approval_is_not_started_and_the_page_says_why(app, staff_client):
    with app.app_context():
        alert_id = _draft()
        _due(alert_id)
        assert scheduling.start_due() == []
        alert = _alert(alert_id)
        assert (alert.state, alert.scheduled_for, alert.last_dispatch_at) == (AlertState.DRAFT, None, None)
        (event,) = _events(approval.START_REFUSED)
        assert (event.actor_kind, event.target) == ("system", f"alert:{alert_id}")
        assert "needs the approval of a second staff member" in event.detail["reason"]
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    refused = re.search(r'id="start-refused">(.*?)</p>', page, re.S)
    assert refused and "Beat did not start this alert" in refused.group(1)
    assert "it goes to 3 recipients" in refused.group(1) and "off the schedule" in refused.group(1)
    with app.app_context():
        assert scheduling.start_due() == []  # off the schedule: not tried again at every tick


def test_a_scheduled_blast_whose_approval_went_void_is_not_started(app, ctx):
    alert_id = _draft()
    _due(alert_id)
    approve(alert_id)
    _change_intro(_alert(alert_id))
    db.session.commit()
    assert scheduling.start_due() == []
    assert _alert(alert_id).state == AlertState.DRAFT
    assert "its approval is void: the content" in _events(approval.START_REFUSED)[0].detail["reason"]


def test_a_scheduled_blast_approved_with_its_time_starts(app, ctx):
    alert_id = _draft()
    _due(alert_id)
    approve(alert_id)
    assert scheduling.start_due() == [alert_id]
    assert _alert(alert_id).state == AlertState.SENDING


# -- the staff pages ------------------------------------------------------------------------------
# (no `ctx` here: a pushed app context would share its `g`, the logged-in user, with every request)


def _as(app, email: str, password: str = SENDER_PASSWORD):
    client = app.test_client()
    assert log_in(client, email, password).status_code == 303
    return client


def _digest_on(page: str) -> str:
    return re.search(r'name="digest" type="hidden" value="([0-9a-f]{64})"', page).group(1)


def test_a_second_sender_approves_on_the_page_and_it_is_recorded(app, staff_client):
    with app.app_context():
        alert_id = _draft(created_by=STAFF_EMAIL)
        sender = _as(app, _sender())
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "needs the approval of a second staff member" in page and "Ask for approval" in page
    assert "Approve…" not in page  # its drafter may not
    shown = sender.get(f"/staff/alerts/{alert_id}/approve")
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200
    assert re.search(r'data-field="audience"><strong>[^<]*3[^<]*</strong>', html), html
    assert "it needs the approval of a second staff member" in html
    assert f'src="/staff/alerts/{alert_id}/preview.html"' in html and "Send me the test email" in html
    done = sender.post(f"/staff/alerts/{alert_id}/approve", data={
        "digest": _digest_on(html), "csrf_token": csrf_token(sender, f"/staff/alerts/{alert_id}")})
    assert done.status_code == 303
    with app.app_context():
        alert = _alert(alert_id)
        assert (alert.approved_by, alert.approved_recipients) == (SENDER, 3)
        (event,) = _events(approval.APPROVE)
        assert (event.actor_kind, event.actor, event.target) == ("staff", SENDER, f"alert:{alert_id}")
        assert set(event.detail["parts"]) == set(approval.PART_WORDS)
    assert f"Approved by {SENDER}" in staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)


def test_the_approve_page_refuses_self_approval_and_changes_nothing(app, staff_client):
    with app.app_context():
        alert_id = _draft(created_by=STAFF_EMAIL)
        digest = approval.digest(_alert(alert_id))
    html = staff_client.get(f"/staff/alerts/{alert_id}/approve").get_data(as_text=True)
    assert "You cannot approve it" in html and "created this alert" in html
    assert 'name="digest"' not in html
    answer = post(staff_client, f"/staff/alerts/{alert_id}/approve", {"digest": digest},
                  page=f"/staff/alerts/{alert_id}")
    assert answer.status_code == 403
    assert "created this alert" in answer.get_data(as_text=True)
    with app.app_context():
        assert _alert(alert_id).approved_by is None and _events(approval.APPROVE) == []


def test_an_approve_page_left_open_across_an_edit_answers_409(app, staff_client):
    with app.app_context():
        alert_id = _draft(created_by=STAFF_EMAIL)
        sender = _as(app, _sender())
    html = sender.get(f"/staff/alerts/{alert_id}/approve").get_data(as_text=True)
    with app.app_context():
        _change_subject(_alert(alert_id))
        db.session.commit()
    answer = sender.post(f"/staff/alerts/{alert_id}/approve", data={
        "digest": _digest_on(html), "csrf_token": csrf_token(sender, f"/staff/alerts/{alert_id}")})
    assert answer.status_code == 409
    assert "changed after this approval page was shown" in answer.get_data(as_text=True)
    with app.app_context():
        assert _alert(alert_id).approved_by is None


def test_an_editor_gets_no_approve_page(app, staff):
    with app.app_context():
        alert_id = _draft()
        editor = _as(app, _sender("editor@example.org", Role.EDITOR))
    assert editor.get(f"/staff/alerts/{alert_id}/approve").status_code == 403


def test_send_says_what_is_missing_and_refuses(app, staff_client):
    with app.app_context():
        alert_id = _draft(created_by=STAFF_EMAIL)
    page = staff_client.get(f"/staff/alerts/{alert_id}/send").get_data(as_text=True)
    blocked = re.search(r'id="send-blocked">(.*?)</p>', page, re.S).group(1)
    assert "needs the approval of a second staff member with send permission" in blocked
    assert 'name="confirm"' not in page
    answer = post(staff_client, f"/staff/alerts/{alert_id}/send", {"confirm": "y"},
                  page=f"/staff/alerts/{alert_id}")
    assert answer.status_code == 303
    flashed = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert f"Not sent: alert {alert_id} was not started: it needs the approval" in flashed
    with app.app_context():
        assert _alert(alert_id).state == AlertState.DRAFT


def test_the_request_reaches_each_other_sender_and_no_one_else(app, staff_client, smtp, celery_worker):
    with app.app_context():
        alert_id = _draft(created_by=STAFF_EMAIL)
        for email, role in [("s1@example.org", Role.SENDER), ("s2@example.org", Role.ADMIN),
                            ("ed@example.org", Role.EDITOR), ("gone@example.org", Role.SENDER)]:
            _sender(email, role)
        gone = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == "gone@example.org"))
        gone.disabled_at = utcnow()
        db.session.commit()
    smtp.handler.clear()
    answer = post(staff_client, f"/staff/alerts/{alert_id}/approval-request",
                  page=f"/staff/alerts/{alert_id}")
    assert answer.status_code == 303
    received = smtp.handler.wait_for(2, timeout=20)
    celery_worker.wait_idle()
    assert sorted(r.rcpt_tos[0] for r in smtp.handler.messages) == ["s1@example.org", "s2@example.org"]
    text = received[0].message.get_body(("plain",)).get_content()
    assert f"{STAFF_EMAIL} asks you to approve" in text
    assert f"https://alerts.example.org/staff/alerts/{alert_id}/approve" in text
    with app.app_context():
        (event,) = _events(approval.REQUEST)
        assert event.detail["asked"] == ["s1@example.org", "s2@example.org"]


# -- the command line -----------------------------------------------------------------------------


def test_cli_approve_by_is_recorded_as_the_operators(app, ctx):
    alert_id = _draft()
    _sender()
    runner = app.test_cli_runner()
    out = runner.invoke(args=["alert", "approve", str(alert_id), "--by", SENDER])
    assert out.exit_code == 0, out.output
    assert f"approved by {SENDER} for 3 recipients" in out.output
    (event,) = _events(approval.APPROVE)
    assert event.actor_kind == "cli" and event.actor.startswith("cli:")
    assert event.detail["by"] == SENDER and event.detail["recipients"] == 3
    status = runner.invoke(args=["alert", "status", str(alert_id)])
    assert f"Approval  approved by {SENDER}" in status.output


@pytest.mark.parametrize("by, message", [
    (DRAFTER, "created this alert"), ("editor@example.org", "approving needs send permission"),
    ("nobody@example.org", "there is no staff account nobody@example.org"),
])
def test_cli_approve_refuses_like_the_page(app, ctx, by, message):
    alert_id = _draft()
    _sender(DRAFTER)
    _sender("editor@example.org", Role.EDITOR)
    out = app.test_cli_runner().invoke(args=["alert", "approve", str(alert_id), "--by", by])
    assert out.exit_code == 1 and out.output.startswith("Error: ") and message in out.output
    assert _alert(alert_id).approved_by is None


def test_cli_send_refuses_naming_what_is_missing(app, ctx):
    alert_id = make_alert()
    add_confirmed(3)
    runner = app.test_cli_runner()
    out = runner.invoke(args=["alert", "send", str(alert_id), "--yes"])
    assert out.exit_code == 1
    assert (f"Error: alert {alert_id} was not started: it needs the approval of a second staff member with "
            "send permission: it goes to 3 recipients, and a blast to 3 or more needs one") in out.output
    assert _alert(alert_id).state == AlertState.DRAFT
    status = runner.invoke(args=["alert", "status", str(alert_id)]).output
    assert "Approval  it needs the approval of a second staff member" in status
