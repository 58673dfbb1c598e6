"""Bounces and complaints: real reports to a real receiver (and a real IMAP server), real rows.

The DSN and ARF fixtures in tests/fixtures/bounces/ are written after what Postfix, Exim,
Gmail and Microsoft 365 send; their placeholders are filled in per test:
{{TO}} the address the report is sent to, {{VERP}} the original envelope sender,
{{RCPT}} the subscriber's address, {{MESSAGE_ID}} the original Message-ID,
{{REPORT_ID}} the report's own Message-ID.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from alerts.bounces import processing
from alerts.bounces.poller import MailboxConfig, poll_once
from alerts.bounces.server import BounceServer
from alerts.extensions import db
from alerts.mail import signed_ids as verp
from alerts.models import (
    Alert,
    BounceEvent,
    ConsentRecord,
    Delivery,
    Subscriber,
    Suppression,
    SuppressionLift,
    email_hash,
    utcnow,
)
from alerts.testing.mailcatcher import free_port
from tests.helpers import (
    STAFF_EMAIL,
    add_confirmed,
    blasts,
    bounces,
    csrf_token,
    make_alert,
    save_alert,
    seed_actions,
    subscribe,
    wait_for_state,
)
from tests.helpers import send_confirmation as _send_confirmation

FIXTURES = Path(__file__).parent / "fixtures" / "bounces"
BOUNCE_DOMAIN = "bounce.example.org"


# -- helpers -------------------------------------------------------------------------------------


@pytest.fixture
def bounce_domain(app, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", BOUNCE_DOMAIN)
    return BOUNCE_DOMAIN


@pytest.fixture
def receiver(app, bounce_domain):
    server = BounceServer(app, "127.0.0.1").start()
    yield server
    server.stop()


def report(name: str, *, rcpt: str, verp_addr: str, message_id: str, to: str | None = None,
           report_id: str | None = None) -> bytes:
    text = (FIXTURES / name).read_text()
    local, _, domain = rcpt.partition("@")
    values = {
        "TO": to or verp_addr,
        "VERP": verp_addr,
        "RCPT": rcpt,
        "RCPT_LOCAL": local,
        "RCPT_DOMAIN": domain,
        "MESSAGE_ID": message_id,
        "REPORT_ID": report_id or uuid.uuid4().hex,
    }
    text = re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)
    assert "{{" not in text
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode()


def send(server: BounceServer, data: bytes, rcpt: str, mail_from: str = "") -> None:
    with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
        conn.sendmail(mail_from, [rcpt], data)


def sent_delivery(email: str, alert_id: int, status: str = "confirmed") -> tuple[int, int]:
    """A subscriber and their delivery of the alert, recorded as sent."""
    sub = Subscriber(email=email, status=status)
    db.session.add(sub)
    db.session.flush()
    delivery = Delivery(alert_id=alert_id, subscriber_id=sub.id, status="sent", sent_at=utcnow())
    db.session.add(delivery)
    db.session.commit()
    return sub.id, delivery.id


def addresses_for(alert_id: int, delivery_id: int) -> tuple[str, str]:
    """The VERP return path and Message-ID the blast engine gives this delivery."""
    factory = blasts.MessageFactory.for_alert(db.session.get(Alert, alert_id))
    return verp.return_path("d", delivery_id), factory.message_id(delivery_id)


def fresh() -> None:
    """See what the receiver's threads committed."""
    db.session.rollback()


def suppression(email: str) -> Suppression | None:
    return db.session.scalar(sa.select(Suppression).where(Suppression.email_hash == email_hash(email)))


def events(subscriber_id: int | None = None) -> list[BounceEvent]:
    query = sa.select(BounceEvent).order_by(BounceEvent.id)
    if subscriber_id is not None:
        query = query.where(BounceEvent.subscriber_id == subscriber_id)
    return list(db.session.scalars(query))


def new_alert(subject: str) -> int:
    seed_actions()
    return save_alert(None, subject=subject, intro_md="Stand up for kids.", preheader="").id


# -- each format, each kind ---------------------------------------------------------------------


FORMATS = [
    # fixture, kind, suppression reason (None: not suppressed), delivery status afterwards
    ("postfix_hard.eml", "hard", "hard-bounce", "failed"),
    ("exim_hard.eml", "hard", "hard-bounce", "failed"),
    ("gmail_hard.eml", "hard", "hard-bounce", "failed"),
    ("microsoft_hard.eml", "hard", "hard-bounce", "failed"),
    ("postfix_soft.eml", "soft", None, "failed"),
    ("gmail_soft.eml", "soft", None, "failed"),
    ("postfix_delayed.eml", "delayed", None, "sent"),
    ("exim_delayed.eml", "delayed", None, "sent"),
    ("arf_complaint.eml", "complaint", "complaint", "sent"),
]


@pytest.mark.commits
@pytest.mark.parametrize(("fixture", "kind", "reason", "delivery_status"), FORMATS,
                         ids=[f[0].removesuffix(".eml") for f in FORMATS])
def test_report_changes_the_right_subscriber(ctx, receiver, fixture, kind, reason, delivery_status):
    alert_id = make_alert()
    target_id, target_delivery = sent_delivery("jane.doe@example.net", alert_id)
    other_id, other_delivery = sent_delivery("john.roe@example.net", alert_id)
    verp_addr, message_id = addresses_for(alert_id, target_delivery)
    assert "jane" not in verp_addr
    # An ARF report goes to the feedback-loop address; the VERP address is inside it.
    to = f"fbl@{BOUNCE_DOMAIN}" if kind == "complaint" else verp_addr
    send(receiver, report(fixture, rcpt="jane.doe@example.net", verp_addr=verp_addr,
                          message_id=message_id, to=to), to)
    fresh()

    (event,) = events()
    assert (event.kind, event.subscriber_id, event.delivery_id) == (kind, target_id, target_delivery)
    assert event.matched_by == "verp" and event.source == "smtp"
    assert "jane.doe@example.net" not in (event.diagnostic or "")  # the address is not kept
    entry = suppression("jane.doe@example.net")
    assert (entry.reason if entry else None) == reason
    assert db.session.get(Delivery, target_delivery).status == delivery_status
    target = db.session.get(Subscriber, target_id)
    if kind == "complaint":
        assert target.status == "unsubscribed"
        assert target.consents[-1].event == "unsubscribe:complaint"
        assert event.outcome == "unsubscribed and suppressed"
    else:
        assert target.status == "confirmed"
    if kind == "hard":
        assert event.status and event.status.startswith("5.1.")
        assert event.outcome == "suppressed"
    # Nobody else is touched.
    assert db.session.get(Subscriber, other_id).status == "confirmed"
    assert db.session.get(Delivery, other_delivery).status == "sent"
    assert suppression("john.roe@example.net") is None


def test_bounce_of_a_real_blast_suppresses_and_the_next_blast_leaves_them_out(
        app, ctx, smtp, celery_worker, receiver):
    emails = add_confirmed(3, prefix="real")
    first = make_alert("First alert")
    assert blasts.launch(first) == 3
    assert wait_for_state(first)["state"] == "sent"
    sent = {m.rcpt_tos[0]: m for m in smtp.handler.wait_for(3, timeout=10)}
    bounced = sent[emails[1]]
    assert bounced.mail_from.endswith(f"@{BOUNCE_DOMAIN}") and "real" not in bounced.mail_from
    # The relay returns the message's own headers, as Postfix does.
    data = report("postfix_hard.eml", rcpt=emails[1], verp_addr=bounced.mail_from,
                  message_id=bounced.message["Message-ID"])
    send(receiver, data, bounced.mail_from)
    fresh()
    assert suppression(emails[1]).reason == "hard-bounce"
    delivery = db.session.get(Delivery, verp.parse_return_path(bounced.mail_from).ident)
    assert delivery.status == "failed" and delivery.error.startswith("bounced (hard): 5.1.1")
    assert blasts.status(first)["failed"] == 1

    second = make_alert("Second alert")
    assert blasts.start_blast(second) == 2


@pytest.mark.commits
def test_message_id_identifies_a_bounce_sent_to_another_address(ctx, receiver):
    """No VERP anywhere (BOUNCE_DOMAIN was set later, or a relay rewrote it): the Message-ID."""
    alert_id = make_alert()
    sub_id, delivery_id = sent_delivery("mid@example.net", alert_id)
    _, message_id = addresses_for(alert_id, delivery_id)
    to = f"postmaster@{BOUNCE_DOMAIN}"
    send(receiver, report("gmail_hard.eml", rcpt="mid@example.net", verp_addr="alerts@example.org",
                          message_id=message_id, to=to), to)
    fresh()
    (event,) = events()
    assert (event.subscriber_id, event.delivery_id, event.matched_by) == (sub_id, delivery_id, "message-id")
    assert suppression("mid@example.net").reason == "hard-bounce"


@pytest.mark.commits
def test_forged_tags_are_ignored_and_unknown_addresses_change_nothing(ctx, receiver):
    alert_id = make_alert()
    sub_id, delivery_id = sent_delivery("victim@example.net", alert_id)
    good_verp, good_mid = addresses_for(alert_id, delivery_id)
    forged_verp = re.sub(r"-[0-9a-f]{10}@", "-0000000000@", good_verp)
    forged_mid = re.sub(r"\.[0-9a-f]{12}@", ".000000000000@", good_mid)
    assert verp.parse_return_path(forged_verp) is None
    send(receiver, report("postfix_hard.eml", rcpt="stranger@example.net", verp_addr=forged_verp,
                          message_id=forged_mid), forged_verp)
    fresh()
    (event,) = events()
    assert event.subscriber_id is None and event.delivery_id is None
    assert event.outcome == "no subscriber matched"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Suppression)) == 0
    assert db.session.get(Delivery, delivery_id).status == "sent"


def test_the_poller_path_ignores_a_report_that_only_names_an_address(ctx, bounce_domain):
    """The IMAP path too: a report with nothing signed of ours changes no one, however exactly
    it names a subscriber (anyone can mail the operator's mailbox a forged ARF)."""
    sub = Subscriber(email="Known.Person@example.net", status="confirmed")
    db.session.add(sub)
    db.session.commit()
    for name in ("exim_hard.eml", "arf_complaint.eml"):
        data = report(name, rcpt="known.person@example.net", verp_addr="alerts@example.org",
                      message_id=f"<someone-else-{name}@example.org>", to="alerts@example.org")
        outcome = bounces.process(data, source="imap", record_unmatched=False)
        assert not outcome.matched and outcome.events == []
    fresh()
    assert events() == []
    assert suppression("known.person@example.net") is None
    assert db.session.get(Subscriber, sub.id).status == "confirmed"


@pytest.mark.commits
def test_the_open_receiver_ignores_a_forged_report_that_only_names_an_address(ctx, receiver):
    """Over SMTP anyone can send a report: naming a subscriber's address is not enough."""
    db.session.add(Subscriber(email="target@example.net", status="confirmed"))
    db.session.commit()
    rcpt = f"bounces@{BOUNCE_DOMAIN}"
    send(receiver, report("postfix_hard.eml", rcpt="target@example.net", verp_addr=rcpt,
                          message_id="<forged@example.org>", to=rcpt), rcpt)
    fresh()
    assert suppression("target@example.net") is None
    assert [e.subscriber_id for e in events()] == [None]


def test_receiver_takes_mail_only_for_its_domain_and_caps_the_size(app, ctx, bounce_domain):
    server = BounceServer(app, "127.0.0.1", max_bytes=5_000).start()
    try:
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.ehlo()
            code, _ = conn.mail("")
            assert code == 250
            code, text = conn.rcpt("someone@example.com")
            assert code == 550, text
            code, _ = conn.rcpt(f"anything@{BOUNCE_DOMAIN.upper()}")
            assert code == 250
            conn.rset()
            big = b"Subject: big\r\n\r\n" + b"x" * 80 + b"\r\n"
            with pytest.raises(smtplib.SMTPResponseException) as exc:
                conn.sendmail("", [f"bounces@{BOUNCE_DOMAIN}"], big * 100)
            assert exc.value.smtp_code == 552
        # Not a report at all: accepted, and nothing is recorded.
        with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
            conn.sendmail("friend@example.com", [f"bounces@{BOUNCE_DOMAIN}"],
                          b"From: friend@example.com\r\nSubject: hello\r\n\r\nHow are you?\r\n")
        fresh()
        assert events() == []
    finally:
        server.stop()

@pytest.mark.commits
def test_a_report_with_raw_utf8_in_its_fields_is_applied(ctx, receiver):
    """Such a report made the reader raise, and the receiver answered 451 for days."""
    alert_id = make_alert()
    sub_id, delivery_id = sent_delivery("utf8@example.net", alert_id)
    verp_addr, message_id = addresses_for(alert_id, delivery_id)
    send(receiver, report("utf8_delivery_status.eml", rcpt="utf8@example.net", verp_addr=verp_addr,
                          message_id=message_id), verp_addr)
    fresh()
    (event,) = events()
    assert (event.kind, event.subscriber_id, event.matched_by) == ("hard", sub_id, "verp")
    assert suppression("utf8@example.net").reason == "hard-bounce"


def test_a_report_naming_many_unknown_recipients_records_a_few(ctx, bounce_domain):
    """Security issue item 7: one DSN with 50,000 recipient blocks made 50,001 rows."""
    blocks = "".join(f"Final-Recipient: rfc822; stranger{i}@example.net\r\nAction: failed\r\n"
                     "Status: 5.1.1\r\n\r\n" for i in range(5_000))
    data = (b"From: MAILER-DAEMON@mx.example.net\r\nTo: alerts@example.org\r\n"
            b"Message-ID: <many@mx.example.net>\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=BB\r\n\r\n"
            b"--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n"
            + blocks.encode() + b"--BB--\r\n")
    outcome = bounces.process(data, source="imap")
    assert outcome.is_report and not outcome.matched
    fresh()
    assert len(events()) == processing.MAX_UNMATCHED_EVENTS


def test_a_report_that_cannot_be_read_is_accepted_not_retried(ctx, receiver, monkeypatch):
    """Reading it again will not help: a 451 would only have the sender retry it for days."""
    def choke(*args, **kwargs):
        raise ValueError("a parser bug")

    monkeypatch.setattr(processing, "parse_report", choke)
    rcpt = f"bounces@{BOUNCE_DOMAIN}"
    send(receiver, report("postfix_hard.eml", rcpt="jane.doe@example.net", verp_addr=rcpt,
                          message_id="<someone@example.org>"), rcpt)  # no SMTPDataError: a 250
    fresh()
    assert events() == []


@pytest.mark.commits
def test_the_same_report_twice_counts_once(ctx, receiver):
    alert_id = make_alert()
    sub_id, delivery_id = sent_delivery("twice@example.net", alert_id)
    verp_addr, message_id = addresses_for(alert_id, delivery_id)
    data = report("postfix_soft.eml", rcpt="twice@example.net", verp_addr=verp_addr,
                  message_id=message_id, report_id="same-report")
    send(receiver, data, verp_addr)
    send(receiver, data, verp_addr)  # the sending server retried after a lost 250
    fresh()
    assert len(events(sub_id)) == 1


@pytest.mark.commits
def test_soft_bounces_suppress_at_the_threshold_within_the_window(app, ctx, receiver, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_THRESHOLD", 3)
    monkeypatch.setitem(app.config, "BOUNCE_SOFT_WINDOW_DAYS", 7)
    alert_ids = [new_alert(f"Alert {i}") for i in range(3)]
    sub = Subscriber(email="full@example.net", status="confirmed")
    old = Subscriber(email="slow@example.net", status="confirmed")
    db.session.add_all([sub, old])
    db.session.flush()
    deliveries = []
    for alert_id in alert_ids:
        d = Delivery(alert_id=alert_id, subscriber_id=sub.id, status="sent", sent_at=utcnow())
        db.session.add(d)
        db.session.flush()
        deliveries.append(d.id)
    db.session.commit()
    sub_id, old_id = sub.id, old.id

    def soft(delivery_id: int, email: str = "full@example.net", fixture: str = "postfix_soft.eml"):
        alert_id = db.session.get(Delivery, delivery_id).alert_id
        verp_addr, message_id = addresses_for(alert_id, delivery_id)
        send(receiver, report(fixture, rcpt=email, verp_addr=verp_addr, message_id=message_id), verp_addr)
        fresh()

    soft(deliveries[0])
    soft(deliveries[0], fixture="gmail_soft.eml")  # a second report on the same message: one strike
    soft(deliveries[1])
    assert suppression("full@example.net") is None
    assert events(sub_id)[-1].outcome == "soft bounce 2 of 3 within 7 days"
    soft(deliveries[2])
    entry = suppression("full@example.net")
    assert entry.reason == "soft-bounce" and entry.detail.startswith("3 soft bounces within 7 days")
    assert events(sub_id)[-1].outcome == "suppressed after 3 soft bounces"

    # Bounces older than the window do not count.
    long_ago = utcnow() - timedelta(days=8)
    db.session.add_all([
        BounceEvent(source="smtp", kind="soft", subscriber_id=old_id, report_key=f"old{i}",
                    outcome="soft bounce", received_at=long_ago)
        for i in range(2)
    ])
    d = Delivery(alert_id=alert_ids[0], subscriber_id=old_id, status="sent", sent_at=utcnow())
    db.session.add(d)
    db.session.commit()
    soft(d.id, email="slow@example.net")
    assert suppression("slow@example.net") is None
    assert events(old_id)[-1].outcome == "soft bounce 1 of 3 within 7 days"


@pytest.mark.commits
def test_a_bounced_confirmation_suppresses_the_address(ctx, receiver):
    sub = Subscriber(email="typo@gmial.example", status="pending", confirm_nonce="n")
    db.session.add(sub)
    db.session.commit()
    verp_addr = verp.return_path("c", sub.id)
    send(receiver, report("microsoft_hard.eml", rcpt="typo@gmial.example", verp_addr=verp_addr,
                          message_id="<random.123@example.org>"), verp_addr)
    fresh()
    assert suppression("typo@gmial.example").reason == "hard-bounce"
    assert db.session.get(Subscriber, sub.id).status == "pending"
    assert _send_confirmation(sub.id) is False


def test_a_confirmation_refused_at_rcpt_is_a_hard_bounce(ctx):
    sub = Subscriber(email="nobody@example.net", status="pending", confirm_nonce="n")
    db.session.add(sub)
    db.session.commit()
    temporary = smtplib.SMTPRecipientsRefused({"nobody@example.net": (450, b"4.2.0 try later")})
    assert bounces.confirmation_refused(sub.id, temporary) is False
    refused = smtplib.SMTPRecipientsRefused({"nobody@example.net": (550, b"5.1.1 no such user")})
    assert bounces.confirmation_refused(sub.id, refused) is True
    assert suppression("nobody@example.net").detail == "550 5.1.1 no such user"


# -- a suppressed address gets nothing, by any path ----------------------------------------------


def test_a_suppressed_address_gets_nothing_from_any_path(app, client, smtp, celery_worker):
    with app.app_context():
        bounces.suppress_manually("blocked@example.org", by="staff@example.org", note="asked by phone")
        pending = Subscriber(email="pending-blocked@example.org", status="pending", confirm_nonce="n")
        db.session.add(pending)
        db.session.commit()
        pending_id = pending.id
        bounces.suppress_manually("pending-blocked@example.org", by="staff@example.org", note="x")

    # The signup form: the same answer, and no confirmation email.
    blocked = subscribe(client, "blocked@example.org", ip="198.51.100.61")
    token = csrf_token(client)
    normal = subscribe(client, "welcome@example.org", ip="198.51.100.62")
    assert blocked.status_code == normal.status_code == 200
    # The same page but for the address it echoes back.
    assert (blocked.get_data(as_text=True).replace(token, "").replace("blocked@", "ADDRESS@")
            == normal.get_data(as_text=True).replace(token, "").replace("welcome@", "ADDRESS@"))
    smtp.handler.wait_for(1, timeout=20)
    celery_worker.wait_idle()
    assert [m.rcpt_tos for m in smtp.messages] == [["welcome@example.org"]]

    with app.app_context():
        # A confirmation queued before the address was suppressed is not sent.
        assert _send_confirmation(pending_id) is False
        # A blast leaves the address out, even when it is a confirmed subscriber.
        db.session.execute(sa.update(Subscriber).values(status="confirmed"))
        db.session.add(Subscriber(email="reader@example.org", status="confirmed"))
        db.session.commit()
        alert_id = make_alert()
        with pytest.raises(blasts.BlastError, match="suppression list"):
            blasts.send_test(alert_id, "blocked@example.org")
        assert blasts.start_blast(alert_id) == 2  # welcome@ and reader@
        recipients = db.session.scalars(
            sa.select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        ).all()
        assert sorted(recipients) == ["reader@example.org", "welcome@example.org"]

        # Lifted, the address can be mailed again.
        entry = suppression("blocked@example.org")
        bounces.lift(entry.id, by="staff@example.org", reason="they wrote in to ask back")
        blasts.send_test(alert_id, "blocked@example.org")
    assert smtp.handler.wait_for(2, timeout=10)[-1].rcpt_tos == ["blocked@example.org"]


# -- staff pages --------------------------------------------------------------------------------


def post(client, path: str, data: dict):
    return client.post(path, data={**data, "csrf_token": csrf_token(client, "/staff/suppressions")})


def test_staff_pages_need_a_login(client):
    for path in ("/staff/suppressions", "/staff/bounces"):
        response = client.get(path)
        assert response.status_code == 302 and "/staff/login" in response.headers["Location"]
    assert client.post("/staff/suppressions", data={"email": "x@example.org"}).status_code in (400, 401)
    assert client.post("/staff/suppressions/1/lift", data={"reason": "x"}).status_code in (400, 401)


def test_staff_see_add_search_and_lift_suppressions(app, staff_client):
    client = staff_client
    with app.app_context():
        bounces.suppress("bounced@example.net", "hard-bounce", "550 5.1.1 user unknown")
        db.session.add(Suppression(email_hash=email_hash("erased@example.net"), email=None,
                                   reason="erased", detail="erased at their request"))
        db.session.commit()

    page = client.get("/staff/suppressions").get_data(as_text=True)
    assert "bounced@example.net" in page and "hard-bounce" in page and "550 5.1.1 user unknown" in page
    assert "<em>erased</em>" in page and "erased@example.net" not in page

    # Adding: an address and a reason are both required.
    bad = post(client, "/staff/suppressions", {"email": "not an address", "note": ""})
    assert bad.status_code == 400
    added = post(client, "/staff/suppressions", {"email": "Manual@Example.ORG", "note": "asked by phone"})
    assert added.status_code == 303
    with app.app_context():
        entry = suppression("manual@example.org")
        assert entry.reason == "manual" and entry.email == "Manual@example.org"
        assert entry.detail == f"Added by {STAFF_EMAIL}: asked by phone"
        manual_id = entry.id

    # Search: part of an address, or a whole address, which finds an erased entry too.
    page = client.get("/staff/suppressions?q=manual").get_data(as_text=True)
    assert "Manual@example.org" in page and "bounced@example.net" not in page
    page = client.get("/staff/suppressions?q=erased@example.net").get_data(as_text=True)
    assert "<em>erased</em>" in page and "bounced@example.net" not in page

    # Lifting needs a reason, which is kept with who and when.
    refused = post(client, f"/staff/suppressions/{manual_id}/lift", {"reason": "  "})
    assert refused.status_code == 303
    assert "Give a reason for lifting" in client.get("/staff/suppressions").get_data(as_text=True)
    with app.app_context():
        assert suppression("manual@example.org") is not None
    lifted = post(client, f"/staff/suppressions/{manual_id}/lift", {"reason": "they called back"})
    assert lifted.status_code == 303
    with app.app_context():
        assert suppression("manual@example.org") is None
        (record,) = db.session.scalars(sa.select(SuppressionLift)).all()
        assert (record.email, record.reason, record.lifted_by, record.lift_reason) == (
            "Manual@example.org", "manual", STAFF_EMAIL, "they called back")
        assert record.suppressed_at <= record.lifted_at
    page = client.get("/staff/suppressions").get_data(as_text=True)
    assert "is no longer suppressed" in page and "they called back" in page
    assert post(client, "/staff/suppressions/999999/lift", {"reason": "x"}).status_code == 404


@pytest.mark.commits
def test_staff_see_the_bounce_log(app, receiver, staff_client):
    # No app context around the requests: each request's own g holds its login.
    with app.app_context():
        alert_id = make_alert()
        _, delivery_id = sent_delivery("logged@example.net", alert_id)
        verp_addr, message_id = addresses_for(alert_id, delivery_id)
    send(receiver, report("postfix_delayed.eml", rcpt="logged@example.net", verp_addr=verp_addr,
                          message_id=message_id), verp_addr)
    send(receiver, report("postfix_hard.eml", rcpt="stranger@example.net", verp_addr="alerts@example.org",
                          message_id="<x@example.org>", to=f"postmaster@{BOUNCE_DOMAIN}"),
         f"postmaster@{BOUNCE_DOMAIN}")
    page = staff_client.get("/staff/bounces").get_data(as_text=True)
    assert "logged@example.net" in page and "delayed" in page and "4.4.1" in page
    assert "recorded (delayed: no action)" in page
    assert "<em>unknown</em>" in page and "no subscriber matched" in page
    assert "stranger@example.net" not in page  # unmatched addresses are not kept
    only_hard = staff_client.get("/staff/bounces?kind=hard").get_data(as_text=True)
    assert "logged@example.net" not in only_hard and "no subscriber matched" in only_hard


# -- the IMAP poller, against Dovecot --------------------------------------------------------------

DOVECOT = "/usr/sbin/dovecot"
IMAP_USER, IMAP_PASSWORD = "bounces", "imap-test-password"

DOVECOT_CONF = """\
base_dir = {base}/run
state_dir = {base}/state
instance_name = alerts-test-{port}
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{base}/mail/%u/Maildir
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = {uid}
first_valid_gid = {gid}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


@pytest.fixture
def dovecot(tmp_path):
    """Our own Dovecot on a free loopback port, with a static user and a Maildir."""
    if not os.path.exists(DOVECOT):
        pytest.skip(f"{DOVECOT} is absent: install dovecot-imapd (scripts/setup --test does)")
    if os.geteuid() == 0:
        # Dovecot will not open mail as root, and tmp_path's parents are private to root:
        # the Maildir goes in a directory its unprivileged users can reach.
        try:
            mail_user, login_user = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
        except KeyError:
            pytest.skip("the dovecot and dovenull users are missing: reinstall dovecot-core")
        base = Path(tempfile.mkdtemp(prefix="alerts-dovecot-"))
        base.chmod(0o755)
        (base / "mail").mkdir()
        os.chown(base / "mail", mail_user.pw_uid, mail_user.pw_gid)
        uid, gid = mail_user.pw_uid, mail_user.pw_gid
        names = {"login_user": login_user.pw_name, "internal_user": mail_user.pw_name}
    else:
        base = tmp_path / "dovecot"
        (base / "mail").mkdir(parents=True)
        me = pwd.getpwuid(os.getuid())
        uid, gid = me.pw_uid, me.pw_gid
        names = {"login_user": me.pw_name, "internal_user": me.pw_name}
    port = free_port()
    conf = tmp_path / "dovecot.conf"
    conf.write_text(DOVECOT_CONF.format(base=base, port=port, uid=uid, gid=gid,
                                        password=IMAP_PASSWORD, **names))
    proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (base / "dovecot.log").read_text() if (base / "dovecot.log").exists() else ""
                pytest.fail(f"dovecot did not start: {proc.stderr.read().decode()} {log}")
            time.sleep(0.05)
        yield MailboxConfig(host="127.0.0.1", port=port, user=IMAP_USER, password=IMAP_PASSWORD,
                            mailbox="INBOX", security="plain")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()
        if base != tmp_path / "dovecot":
            shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def imap(cfg: MailboxConfig):
    conn = imaplib.IMAP4(cfg.host, cfg.port, timeout=10)
    conn.login(cfg.user, cfg.password)
    try:
        yield conn
    finally:
        conn.logout()


def mailbox_state(cfg: MailboxConfig, mailbox: str) -> dict[str, set[str]]:
    """{Subject: flags} of every message in the mailbox, read without changing anything."""
    with imap(cfg) as conn:
        typ, _ = conn.select(f'"{mailbox}"', readonly=True)
        if typ != "OK":
            return {}
        _, data = conn.uid("SEARCH", None, "ALL")
        uids = (data[0] or b"").split()
        if not uids:
            return {}
        _, data = conn.uid("FETCH", b",".join(uids).decode(), "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split())
                subject = item[1].decode().split(":", 1)[1].strip()
                out[subject] = flags - {"\\Recent"}
        return out


PERSONAL = (
    b"From: Maria Lopez <maria@example.com>\r\n"
    b"To: alerts@example.org\r\n"
    b"Subject: Volunteering next Saturday\r\n"
    b"Message-ID: <personal-1@example.com>\r\n"
    b"Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    b"\r\n"
    b"Hi! Can I help at the Rikers rally? Write back to maria@example.com.\r\n"
)


@pytest.mark.slow  # starts Dovecot
def test_imap_poller_ignores_forged_reports_and_acts_on_a_mailto_unsubscribe(app, ctx, dovecot,
                                                                              bounce_domain):
    """A forged ARF naming a subscriber only by address stays in the mailbox and changes no
    one; a message to a subscriber's signed List-Unsubscribe address unsubscribes at once."""
    from alerts.mail.signed_ids import unsubscribe_address

    alert_id = make_alert()
    target_id, _ = sent_delivery("target@example.net", alert_id)
    leaver_id, _ = sent_delivery("leaver@example.net", alert_id)
    forged = report("arf_complaint.eml", rcpt="target@example.net", verp_addr="alerts@example.org",
                    message_id="<forged-1@example.org>", to="alerts@example.org", report_id="forged")
    mailto = unsubscribe_address(db.session.get(Subscriber, leaver_id).token_key)
    leave = (f"From: leaver@example.net\r\nTo: {mailto}\r\nSubject: unsubscribe\r\n"
             f"Message-ID: <leave-1@example.net>\r\n\r\nunsubscribe\r\n").encode()
    with imap(dovecot) as conn:
        for data in (forged, leave):
            assert conn.append("INBOX", None, None, data)[0] == "OK"
    result = poll_once(dovecot)
    assert (result.reports, result.failed) == (1, 0)
    fresh()
    assert db.session.get(Subscriber, target_id).status == "confirmed"
    assert suppression("target@example.net") is None
    assert db.session.get(Subscriber, leaver_id).status == "unsubscribed"
    assert set(mailbox_state(dovecot, "INBOX")) == {"FW: Act now for kids"}
    assert set(mailbox_state(dovecot, "Processed")) == {"unsubscribe"}


@pytest.mark.slow  # starts Dovecot
def test_imap_poller_takes_only_the_reports_it_processed(app, ctx, dovecot, bounce_domain):
    alert_id = make_alert()
    hard_id, hard_delivery = sent_delivery("gone@example.net", alert_id)
    angry_id, angry_delivery = sent_delivery("angry@example.net", alert_id)
    hard_verp, hard_mid = addresses_for(alert_id, hard_delivery)
    angry_verp, angry_mid = addresses_for(alert_id, angry_delivery)
    dsn = report("postfix_hard.eml", rcpt="gone@example.net", verp_addr=hard_verp, message_id=hard_mid,
                 report_id="imap-dsn")
    arf = report("arf_complaint.eml", rcpt="angry@example.net", verp_addr=angry_verp,
                 message_id=angry_mid, to="alerts@example.org", report_id="imap-arf")
    # A bounce of the office's own mail: a report, but not about anything of ours.
    theirs = report("gmail_hard.eml", rcpt="old-friend@example.com", verp_addr="alerts@example.org",
                    message_id="<office-mail-7@example.org>", to="alerts@example.org")
    with imap(dovecot) as conn:
        for data in (dsn, PERSONAL, arf, theirs):
            typ, _ = conn.append("INBOX", None, None, data)
            assert typ == "OK"

    result = poll_once(dovecot)
    assert (result.reports, result.duplicates, result.failed) == (2, 0, 0)
    fresh()
    assert suppression("gone@example.net").reason == "hard-bounce"
    assert db.session.get(Delivery, hard_delivery).status == "failed"
    assert db.session.get(Subscriber, angry_id).status == "unsubscribed"
    assert suppression("angry@example.net").reason == "complaint"
    assert {(e.subscriber_id, e.kind, e.source) for e in events()} == {
        (hard_id, "hard", "imap"), (angry_id, "complaint", "imap")}

    inbox = mailbox_state(dovecot, "INBOX")
    assert inbox == {"Volunteering next Saturday": set(), "Delivery Status Notification (Failure)": set()}
    assert set(mailbox_state(dovecot, "Processed")) == {
        "Undelivered Mail Returned to Sender", "FW: Act now for kids"}

    # Again, through the command line: nothing new, nothing counted twice, nothing touched.
    url = f"imap://{IMAP_USER}:{IMAP_PASSWORD}@127.0.0.1:{dovecot.port}/INBOX"
    out = app.test_cli_runner().invoke(args=["bounces", "poll", "--url", url])
    assert out.exit_code == 0, out.output
    assert "0 reports applied" in out.output
    # The same report again (as if a move had failed after the commit): moved, not re-applied.
    with imap(dovecot) as conn:
        conn.append("INBOX", None, None, dsn)
    again = poll_once(dovecot)
    assert (again.reports, again.duplicates) == (0, 1)
    fresh()
    assert len(events()) == 2
    assert mailbox_state(dovecot, "INBOX") == inbox
    assert len(db.session.scalars(sa.select(ConsentRecord).where(
        ConsentRecord.subscriber_id == angry_id, ConsentRecord.event == "unsubscribe:complaint")).all()) == 1


# -- the receiver under a flood ------------------------------------------------------------------


def _begin_data(server: BounceServer) -> smtplib.SMTP:
    """A session that has said DATA and been told 354: its report is now arriving."""
    conn = smtplib.SMTP(server.host, server.port, timeout=10)
    conn.ehlo()
    conn.mail("")
    conn.rcpt(f"bounces@{BOUNCE_DOMAIN}")
    conn.putcmd("data")
    code, text = conn.getreply()
    assert code == 354, text
    return conn


def test_reports_arriving_at_once_past_the_cap_are_told_to_try_again(app, ctx, bounce_domain):
    server = BounceServer(app, "127.0.0.1", max_sessions=2).start()
    arriving = []
    try:
        arriving = [_begin_data(server), _begin_data(server)]
        with smtplib.SMTP(server.host, server.port, timeout=10) as third:
            third.ehlo()
            third.mail("")
            third.rcpt(f"bounces@{BOUNCE_DOMAIN}")
            code, text = third.docmd("DATA")
            assert code == 452 and b"try again later" in text  # temporary: the sender retries
            for conn in arriving:  # the two under way are taken
                conn.send(b"Subject: not a report\r\n\r\nhello\r\n.\r\n")
                assert conn.getreply()[0] == 250
            third.rset()  # and once they are done, the third one is too
            third.sendmail("", [f"bounces@{BOUNCE_DOMAIN}"], b"Subject: hi\r\n\r\nhello\r\n")
    finally:
        for conn in arriving:
            conn.close()
        server.stop()


def _memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the most it ever held), in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


@pytest.mark.slow
def test_a_flood_of_oversized_reports_is_refused_without_being_held(app, bounce_domain, tmp_path):
    """Twelve 8.9 MB reports at once at `alerts bounces serve`, as production runs it: each
    is refused (552 over the size, or 452 past the sessions cap) and the receiver's memory
    grows by far less than one of them."""
    from tests.processes import ROOT, worker_env

    port = free_port()
    env = worker_env(app, redis_url=app.config["REDIS_URL"], smtp_url="smtp://127.0.0.1:1",
                     queue="unused", BOUNCE_DOMAIN=BOUNCE_DOMAIN, BOUNCE_SMTP_PORT=str(port))
    log = tmp_path / "receiver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", "from alerts.cli import main; main()",
                                 "bounces", "serve"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=5) as conn:  # warmed up: one report
                    conn.sendmail("", [f"bounces@{BOUNCE_DOMAIN}"],
                                  b"Subject: not a report\r\n\r\nhello\r\n")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        before = _memory_kb(proc.pid)["VmRSS"]
        line = b"x" * 76 + b"\r\n"
        big = b"Subject: Delivery Status Notification\r\n\r\n" + line * (8_900_000 // len(line))
        codes: list[int] = []

        def flood() -> None:
            # No SIZE= declared (smtplib's sendmail would, and be refused at MAIL FROM): the
            # receiver learns the size only as the data arrives.
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as conn:
                conn.ehlo()
                conn.mail("")
                conn.rcpt(f"bounces@{BOUNCE_DOMAIN}")
                try:
                    codes.append(conn.data(big)[0])  # the answer at the data's end
                except smtplib.SMTPResponseException as exc:  # refused before it (at DATA)
                    codes.append(exc.smtp_code)

        threads = [threading.Thread(target=flood) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        memory = _memory_kb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
    assert sorted(set(codes)) in ([552], [452, 552]), codes
    assert len(codes) == 12 and codes.count(552) >= 8
    grew_mb = (memory["VmHWM"] - before) / 1024
    print(f"receiver: {before / 1024:.0f} MB before, peak {memory['VmHWM'] / 1024:.0f} MB, "
          f"{memory['VmRSS'] / 1024:.0f} MB after; answers {sorted(codes)}")
    # Each session under way holds at most its report's first BOUNCE_MAX_MESSAGE_BYTES (as
    # Python lines, about twice that) before it is refused: 8 x 2 x 1 MB, where the reports
    # held whole would be 12 x 8.9 MB and more (a copy per parse).
    bound_mb = app.config["BOUNCE_MAX_SESSIONS"] * 2 * app.config["BOUNCE_MAX_MESSAGE_BYTES"] / 2**20
    assert grew_mb < bound_mb, f"the receiver grew by {grew_mb:.0f} MB at its peak"
