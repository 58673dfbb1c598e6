"""What a new user met in their first hour: wording, defaults and small logic, each held here."""

from __future__ import annotations

import re

import sqlalchemy as sa

from alerts.blasts import compose
from alerts.extensions import db
from alerts.models import Action, Alert
from tests.helpers import blasts, make_alert, post

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"


def _sent(alert_id: int, state: str = "sent") -> None:
    db.session.execute(sa.update(Alert).where(Alert.id == alert_id).values(state=state))
    db.session.commit()


def test_reminding_a_reminder_does_not_double_the_prefix(app, staff_client):
    with app.app_context():
        first = make_alert(subject="Close Rikers", slugs=[RIKERS])
        blasts.start_blast(first)
        _sent(first)
        again = compose.reminder(first, minus_clickers=False)
        db.session.commit()
        assert again.subject == "Reminder: Close Rikers"
        _sent(again.id)
        third = compose.reminder(again.id, minus_clickers=False)
        db.session.commit()
        assert third.subject == "Reminder: Close Rikers"
        _sent(third.id)
        third_id = third.id
    page = staff_client.get(f"/staff/alerts/{third_id}").get_data(as_text=True)
    assert 'value="Reminder: Close Rikers"' in page and "Reminder: Reminder" not in page


def test_remind_is_offered_only_once_the_blast_has_finished(app, staff_client):
    with app.app_context():
        alert_id = make_alert(subject="Close Rikers", slugs=[RIKERS])
        blasts.start_blast(alert_id)  # sending, 0% so far
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Remind those who did not act" not in page
    refused = post(staff_client, f"/staff/alerts/{alert_id}/remind", {"subject": "Too soon"},
                   page=f"/staff/alerts/{alert_id}")
    assert refused.status_code == 303
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Alert)
                                 .where(Alert.parent_id == alert_id)) == 0
        _sent(alert_id)
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert "Remind those who did not act" in page


def test_the_audience_sentence_says_except_those_who_once(app):
    from alerts import audiences

    with app.app_context():
        earlier = make_alert(slugs=[RIKERS])
        rules = audiences.parse({"except_signers_of": [RIKERS], "except_clickers_of": earlier,
                                 "joined_after": "2026-01-01"})
        words = audiences.describe(rules, [1])
    assert words.count("except those who") == 1
    assert words == ("everyone confirmed, who joined on or after 2026-01-01, except those who signed "
                     "Call on Mayor Adams to Follow the Law and Close Rikers Island, "
                     f"who clicked in alert {earlier} or who already signed all this alert's actions")


def test_counts_say_singular_and_plural():
    from alerts.words import plural

    assert (plural(1, "subscriber"), plural(2, "subscriber"), plural(12408, "person", "people")) == (
        "1 subscriber", "2 subscribers", "12,408 people")


def test_a_target_reads_in_lower_case_mid_sentence(app, client):
    from alerts.actions import save

    with app.app_context():
        make_alert()
        # A petition to "Your senators" (the seed's senators action is a call, signed by phoning).
        save(None, title="Tell Your Senators", slug="tell-your-senators", summary="Ask them.",
             call_to_action="Sign the Petition", kind="petition", url=None, is_open=True,
             target="Your senators")
        db.session.commit()
    page = client.get("/actions/tell-your-senators")
    text = page.get_data(as_text=True)
    assert "to what we deliver to your senators." in text and "deliver to Your senators" not in text
    assert "To: <strong>Your senators</strong>" in text  # a line of its own keeps its capital
    rikers = client.get(f"/actions/{RIKERS}").get_data(as_text=True)
    assert "to what we deliver to Mayor Adams." in rikers


def test_thanks_names_the_pledge_not_its_call_to_action(app, client):
    with app.app_context():
        make_alert()
    page = client.get("/actions/sign-the-healthy-kids-healthy-minds-pledge/thanks").get_data(as_text=True)
    assert "Your name is on <strong>the Healthy Kids Healthy Minds Pledge</strong>." in page
    check = client.get("/actions/sign-the-healthy-kids-healthy-minds-pledge/thanks?check=1")
    assert "your signature on <strong>the Healthy Kids Healthy Minds Pledge</strong>" in check.get_data(
        as_text=True)
    rikers = client.get(f"/actions/{RIKERS}/thanks").get_data(as_text=True)
    assert "Your name is on <strong>Call on Mayor Adams to Follow the Law and Close Rikers" in rikers


def test_an_email_thanks_a_partial_signer_for_the_pledge_by_name(app):
    from alerts.blasts import content

    with app.app_context():
        make_alert()
        pledge = db.session.scalar(sa.select(Action).where(
            Action.slug == "sign-the-healthy-kids-healthy-minds-pledge"))
        alert = db.session.get(Alert, make_alert(slugs=[pledge.slug, RIKERS]))
        words = content.alert_context(alert, signed=frozenset({pledge.id}))["thanks"]
    assert words == "You signed the Healthy Kids Healthy Minds Pledge, thank you; now:"


def test_an_error_label_ending_in_a_question_mark_gets_no_colon(app, staff_client):
    import io

    response = staff_client.post("/staff/subscribers/import", data={
        "csrf_token": _token(staff_client, "/staff/subscribers/import"),
        "file": (io.BytesIO(b"email\na@example.org\n"), "people.csv")},
        content_type="multipart/form-data")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "How did these people consent? Choose how these people consented." in page
    assert "consent?:" not in page
    # The chosen file cannot come back with the page: said next to the field.
    assert "You chose <strong>people.csv</strong>" in page and "choose the file again" in page


def _token(client, path: str) -> str:
    from tests.helpers import csrf_token

    return csrf_token(client, path)


def test_next_action_is_one_this_reader_has_not_signed(app, client):
    from tests.test_signing import sign

    with app.app_context():
        make_alert()
        # Those signed on their page's form (a call is made by phone, not signed here).
        db.session.execute(sa.update(Action).where(Action.kind == "call").values(is_open=False))
        db.session.commit()
        order = [a.slug for a in db.session.scalars(sa.select(Action).where(
            Action.is_open, Action.url.is_(None)).order_by(Action.position, Action.id))]
    first, second, third = order[:3]
    assert sign(client, second, name="Ana", email="ana@example.org").status_code == 303
    thanks = client.get(sign(client, first, name="Ana", email="ana@example.org").headers["Location"])
    page = thanks.get_data(as_text=True)
    assert "Next: take another action" in page
    assert f"/actions/{second}?" not in page  # signed already
    assert f"/actions/{third}?src=action-center" in page
    # Every one signed: nothing is offered.
    for slug in order[2:]:
        sign(client, slug, name="Ana", email="ana@example.org")
    assert "Next: take another action" not in client.get(f"/actions/{first}/thanks").get_data(as_text=True)


def test_compose_warns_when_the_intro_names_an_action_a_partial_signers_copy_drops(app, staff_client):
    with app.app_context():
        make_alert()
    response = post(staff_client, "/staff/alerts/new", {
        "subject": "Two asks", "actions": [RIKERS, DETENTION], "engaged_days": "90",
        "intro_md": "Please sign *Call on Mayor Adams to Follow the Law and Close Rikers Island* today."},
        page="/staff/alerts/new")
    assert response.status_code == 303
    draft = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="intro-names"' in draft
    assert "The intro names\n  “Call on Mayor Adams to Follow the Law and Close Rikers Island”." in draft
    alert_id = response.headers["Location"].rsplit("/", 1)[1]
    edit = staff_client.get(f"/staff/alerts/{alert_id}/edit").get_data(as_text=True)
    assert 'id="intro-names"' in edit
    # An intro that names no action: no warning.
    post(staff_client, f"/staff/alerts/{alert_id}/edit", {
        "subject": "Two asks", "actions": [RIKERS, DETENTION], "engaged_days": "90",
        "intro_md": "Children need you today."}, page=f"/staff/alerts/{alert_id}/edit")
    assert 'id="intro-names"' not in staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)


# -- dev mode ----------------------------------------------------------------------------------


def test_the_dev_staff_address_is_one_a_test_send_accepts(app, client, smtp):
    import re

    from alerts.cli.dev import DEV_STAFF_EMAIL
    from tests.helpers import create_staff, log_in

    with app.app_context():
        create_staff(DEV_STAFF_EMAIL, "correct horse battery")
        alert_id = make_alert()
    assert log_in(client, email=DEV_STAFF_EMAIL, password="correct horse battery").status_code == 303
    page = client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    prefilled = re.search(r'id="to"[^>]*value="([^"]*)"|value="([^"]*)"[^>]*id="to"', page)
    to = next(g for g in prefilled.groups() if g)
    assert to == DEV_STAFF_EMAIL
    sent = post(client, f"/staff/alerts/{alert_id}/test", {"to": to}, page=f"/staff/alerts/{alert_id}")
    assert "Test sent to staff@example.org" in client.get(sent.headers["Location"]).get_data(as_text=True)
    assert smtp.handler.wait_for(1, 10)[0].rcpt_tos == [DEV_STAFF_EMAIL]


def test_the_dev_inbox_outlives_a_restart_and_says_so(tmp_path):
    import smtplib

    from alerts.testing.inbox import inbox_app
    from alerts.testing.mailcatcher import CatcherHandler, InboxStore, MailCatcher

    folder = tmp_path / "dev-inbox"
    first = MailCatcher(handler=CatcherHandler(InboxStore(folder))).start()
    try:
        with smtplib.SMTP("127.0.0.1", first.port) as conn:
            conn.sendmail("a@example.org", ["b@example.org"],
                          b"Subject: Kept over a restart\r\nFrom: a@example.org\r\n\r\nHello\r\n")
        first.handler.wait_for(1, 10)
    finally:
        first.stop()
    second = MailCatcher(handler=CatcherHandler(InboxStore(folder))).start()
    try:
        [kept] = second.messages
        assert (kept.subject, kept.rcpt_tos, kept.mail_from) == ("Kept over a restart", ["b@example.org"],
                                                                 "a@example.org")
        inbox = inbox_app(second).test_client()
        page = inbox.get("/").get_data(as_text=True)
        assert "Kept over a restart" in page and f"Kept across restarts in {folder}" in page
        assert "1 message," in page
        with smtplib.SMTP("127.0.0.1", second.port) as conn:  # numbered after what was kept
            conn.sendmail("a@example.org", ["c@example.org"], b"Subject: Second\r\n\r\nHi\r\n")
        second.handler.wait_for(2, 10)
        assert sorted(p.name for p in folder.glob("*.json")) == ["00000000.json", "00000001.json"]
        inbox.post("/clear")
        assert second.messages == [] and list(folder.iterdir()) == []
    finally:
        second.stop()
    # Without a store (the tests' catcher) the page says a restart empties it.
    plain = MailCatcher().start()
    try:
        page = inbox_app(plain).test_client().get("/").get_data(as_text=True)
        assert "restarting empties this inbox" in page
    finally:
        plain.stop()


def test_the_sweep_logs_a_sentence_and_routine_catching_up_is_not_a_warning(app, caplog):
    import logging
    from datetime import timedelta

    from alerts import tasks
    from alerts.models import SignupAttempt, utcnow

    with app.app_context():
        db.session.add(SignupAttempt(email="late@example.org", at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        with caplog.at_level(logging.INFO, logger="alerts.tasks"):
            tasks.sweep()
    [said] = [r for r in caplog.records if r.getMessage().startswith("sweep:")]
    assert said.levelno == logging.INFO
    assert said.getMessage().startswith("sweep: applied 1 signup not yet handled"), said.getMessage()
    assert "{" not in said.getMessage()
    assert tasks.sweep_words({"returned": 3, "redispatched": [7]}) == (
        "returned 3 deliveries to the queue, restarted 1 blast that had stopped moving")


# -- staff pages: sources, tries ---------------------------------------------------------------


def test_a_web_signup_has_the_source_the_dashboard_counts(app, staff_client):
    from alerts.models import ConsentRecord, Subscriber
    from tests.helpers import subscribe

    subscribe(staff_client, "webby@example.org")
    with app.app_context():
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "webby@example.org"))
        consent = db.session.scalar(sa.select(ConsentRecord.source)
                                    .where(ConsentRecord.subscriber_id == sub.id))
        assert sub.source == consent == "web-form"
    listing = staff_client.get("/staff/subscribers").get_data(as_text=True)
    row = listing.split("webby@example.org", 1)[1].split("</tr>", 1)[0]
    assert "<td>web-form</td>" in row


def test_an_unsubscribe_records_the_channel_it_came_through(app, client):
    from alerts.models import ConsentRecord, Subscriber
    from tests.helpers import csrf_token, unsubscribe_token_for

    with app.app_context():
        people = [Subscriber(email=f"imp{i}@example.org", status="confirmed", source="import:list.csv")
                  for i in range(2)]
        db.session.add_all(people)
        db.session.commit()
        tokens = [unsubscribe_token_for(p.id) for p in people]
        ids = [p.id for p in people]
    page = f"/unsubscribe/{tokens[0]}"
    client.post(page, data={"csrf_token": csrf_token(client, page)})
    client.post(f"/unsubscribe/{tokens[1]}", data={"List-Unsubscribe": "One-Click"})
    with app.app_context():
        got = [db.session.execute(sa.select(ConsentRecord.event, ConsentRecord.source)
                                  .where(ConsentRecord.subscriber_id == i)).one() for i in ids]
        assert [tuple(g) for g in got] == [("unsubscribe:link", "link"),
                                           ("unsubscribe:one-click", "one-click")]
        assert db.session.get(Subscriber, ids[0]).status == "unsubscribed"


def test_a_sent_delivery_counts_the_try_that_was_accepted(app, staff_client):
    from alerts.models import Delivery, Subscriber

    with app.app_context():
        sub = Subscriber(email="tried@example.org", status="confirmed")
        db.session.add(sub)
        db.session.flush()
        db.session.add_all([Delivery(alert_id=make_alert(), subscriber_id=sub.id, status=status, attempts=n)
                            for status, n in (("sent", 0), ("sent", 2), ("failed", 3))])
        db.session.commit()
        sub_id = sub.id
    page = staff_client.get(f"/staff/subscribers/{sub_id}").get_data(as_text=True)
    table = page.split("<h2>Deliveries</h2>", 1)[1]
    assert "<th>Tries</th>" in table
    # Newest first: failed after 3 refusals, sent at the third try, sent at the first.
    assert [int(n) for n in re.findall(r'<td class="nowrap">[^<]*</td><td>(\d+)</td>', table)] == [3, 3, 1]
