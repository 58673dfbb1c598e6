"""The blast engine with a real worker, real Redis and a real SMTP server."""

from __future__ import annotations

import collections

import dkim
import pytest

from alerts import blasts
from tests.blast_helpers import add_confirmed, make_alert, wait_for_state


@pytest.fixture
def dkim_key(app, tmp_path, monkeypatch):
    from alerts.dkim_signing import generate_rsa_key

    pem, record = generate_rsa_key(2048)
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(pem)
    monkeypatch.setitem(app.config, "DKIM_DOMAIN", "example.org")
    monkeypatch.setitem(app.config, "DKIM_SELECTOR", "s1")
    monkeypatch.setitem(app.config, "DKIM_PRIVATE_KEY_FILE", str(key_file))
    app.extensions.pop("alerts.dkim", None)
    yield record
    app.extensions.pop("alerts.dkim", None)


def dns_for(record: str):
    def dnsfunc(name, timeout=5):
        assert name == b"s1._domainkey.example.org."
        return record.encode()

    return dnsfunc


def test_small_blast_arrives_once_each_with_every_header(app, ctx, smtp, celery_worker, dkim_key):
    emails = add_confirmed(40)
    alert_id = make_alert()
    assert blasts.launch(alert_id) == 40
    status = wait_for_state(alert_id)
    assert status["state"] == "sent"
    assert (status["total"], status["sent"], status["failed"], status["skipped"]) == (40, 40, 0, 0)
    msgs = smtp.handler.wait_for(40, timeout=10)
    per = collections.Counter(r for m in msgs for r in m.rcpt_tos)
    assert per == {e: 1 for e in emails}
    ids = set()
    for m in msgs:
        msg = m.message
        ids.add(msg["Message-ID"])
        assert msg.get_content_type() == "multipart/alternative"
        lu = msg["List-Unsubscribe"]
        assert lu.startswith("<https://alerts.example.org/unsubscribe/") and "<mailto:" in lu
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"]
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert "1 Test Street, Testville" in html and "1 Test Street, Testville" in text
        assert "Detention is No Place for a Child" in html and "Sign the Pledge" in html
        assert lu[1:].split(">")[0] in html  # the visible link is the header's link
        assert dkim.verify(m.data, dnsfunc=dns_for(dkim_key))
    assert len(ids) == 40


def test_verp_return_path_names_the_delivery_not_the_address(app, ctx, smtp, celery_worker,
                                                               monkeypatch):
    from alerts import verp
    from alerts.models import Delivery, Subscriber

    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", "bounce.example.org")
    emails = add_confirmed(3)
    alert_id = make_alert()
    blasts.launch(alert_id)
    assert wait_for_state(alert_id)["state"] == "sent"
    for m in smtp.handler.wait_for(3, timeout=10):
        assert m.mail_from.endswith("@bounce.example.org")
        assert "example.org" not in m.mail_from.split("@")[0] and "sub0" not in m.mail_from
        target = verp.parse(m.mail_from)
        delivery = ctx_get(Delivery, target.ident)
        assert target.kind == "d" and delivery.alert_id == alert_id
        assert ctx_get(Subscriber, delivery.subscriber_id).email == m.rcpt_tos[0]
    forged = smtp.messages[0].mail_from.replace("+d", "+d9")
    assert verp.parse(forged) is None
    assert verp.parse("someone@bounce.example.org") is None
    assert len(emails) == 3


def ctx_get(model, ident):
    from alerts.extensions import db

    return db.session.get(model, ident)


@pytest.mark.parametrize("pipelining", [True, False])
def test_message_bytes_survive_smtp_with_and_without_pipelining(app, ctx, smtp, pipelining,
                                                                monkeypatch):
    """Dot-stuffing and CRLF: what the server stores is byte for byte what was signed."""
    from alerts import mailer

    monkeypatch.setattr(smtp.handler, "pipelining", pipelining)
    data = b"Subject: t\r\nTo: a@b.org\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
    conn = mailer.connect(smtp.url)
    try:
        assert conn.has_extn("pipelining") == pipelining
        mailer.send_message(conn, "from@x.org", "a@b.org", data)
        mailer.send_message(conn, "from@x.org", "c@d.org", data)
        smtp.handler.rcpt_reply = lambda a: "550 5.1.1 no such user" if a == "bad@x.org" else None
        with pytest.raises(__import__("smtplib").SMTPRecipientsRefused):
            mailer.send_message(conn, "from@x.org", "bad@x.org", data)
        mailer.send_message(conn, "from@x.org", "e@f.org", data)  # the connection still works
    finally:
        conn.quit()
    got = smtp.handler.wait_for(3, timeout=5)
    assert [m.rcpt_tos for m in got] == [["a@b.org"], ["c@d.org"], ["e@f.org"]]
    assert all(m.data == data for m in got)
