"""The blast engine with a real worker, real Redis and a real SMTP server."""

from __future__ import annotations

import collections
import re
import time

import dkim
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from alerts.blasts import content, sending
from alerts.extensions import db
from alerts.models import Subscriber
from tests.helpers import add_confirmed, blasts, make_alert, wait_for_state


@pytest.fixture
def dkim_key(app, tmp_path, monkeypatch):
    from alerts.mail.dkim import generate_rsa_key

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
        # No BOUNCE_DOMAIN here: no mailto (nothing would read it); see test_security.py.
        assert lu.startswith("<https://alerts.example.org/unsubscribe/") and "mailto:" not in lu
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"]
        html = msg.get_body(("html",)).get_content()
        text = msg.get_body(("plain",)).get_content()
        assert "1 Test Street, Testville" in html and "1 Test Street, Testville" in text
        assert "Detention is No Place for a Child" in html and "Sign the Pledge" in html
        assert lu[1:].split(">")[0] in html  # the visible link is the header's link
        assert dkim.verify(m.data, dnsfunc=dns_for(dkim_key))
    assert len(ids) == 40


@pytest.mark.slow
def test_blast_to_2000_by_two_worker_processes(app, ctx, smtp, workers, dkim_key):
    """Two real worker processes (two children each) share one blast: each subscriber gets
    exactly one message, every message carries every header, and the DKIM signature (over
    both unsubscribe headers) verifies, and fails once the body or a header is changed."""
    import time

    emails = add_confirmed(2000)
    alert_id = make_alert()
    env = {"DKIM_DOMAIN": "example.org", "DKIM_SELECTOR": "s1",
           "DKIM_PRIVATE_KEY_FILE": app.config["DKIM_PRIVATE_KEY_FILE"]}
    workers.start(name="w1", **env)
    workers.start(name="w2", beat=False, **env)
    started = time.monotonic()
    assert workers.launch(alert_id) == 2000
    msgs = smtp.handler.wait_for(2000, timeout=120)
    elapsed = time.monotonic() - started
    status = wait_for_state(alert_id, timeout=30)
    assert (status["state"], status["sent"], status["failed"]) == ("sent", 2000, 0)
    per = collections.Counter(r for m in msgs for r in m.rcpt_tos)
    assert per == {e: 1 for e in emails}
    assert len({m.message["Message-ID"] for m in msgs}) == 2000
    for m in msgs:
        msg = m.message
        assert msg["List-Unsubscribe"].startswith("<https://alerts.example.org/unsubscribe/")
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["List-Id"] and msg["DKIM-Signature"]
    for m in msgs[::40]:  # dkimpy is pure Python: a sample of 50 is verified in full
        assert dkim.verify(m.data, dnsfunc=dns_for(dkim_key))
    sample = msgs[0].data
    unsubscribe_url = msgs[0].message["List-Unsubscribe"][1:].split(">")[0].encode()
    for tampered in (sample.replace(b"Detention is No Place", b"Detention is No Plac3"),
                     sample.replace(unsubscribe_url, unsubscribe_url[:-1] + b"X", 1),
                     sample.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=0ne-Click", 1)):
        assert tampered != sample
        assert not dkim.verify(tampered, dnsfunc=dns_for(dkim_key))
    print(f"\n2,000-subscriber blast, 2 worker processes, aiosmtpd sink: {2000 / elapsed:.0f} msg/s")


def test_a_body_that_is_not_canonical_as_built_is_canonicalised_before_signing(app, ctx, dkim_key,
                                                                                monkeypatch):
    """The factory skips canonicalisation only once its first body proved canonical: a body
    that is not (a double space and a tab slipped in) is still signed so that it verifies."""
    from alerts.blasts import content
    from alerts.extensions import db
    from alerts.models import Alert

    factory = content.MessageFactory.for_alert(db.session.get(Alert, make_alert()))
    made = content.message_parts

    def not_canonical(**fields):
        head, body = made(**fields)
        return head, body.replace(b"Detention is", b"Detention  is\t")

    monkeypatch.setattr(content, "message_parts", not_canonical)
    signed = [factory.build(n, n, f"reader{n}@example.org") for n in (1, 2)]
    assert factory._canonical is False
    for data in signed:
        assert b"Detention  is\t" in data
        assert dkim.verify(data, dnsfunc=dns_for(dkim_key))
    fresh = content.MessageFactory.for_alert(db.session.get(Alert, make_alert()))
    monkeypatch.setattr(content, "message_parts", made)
    assert dkim.verify(fresh.build(3, 3, "reader3@example.org"), dnsfunc=dns_for(dkim_key))
    assert fresh._canonical is True


def test_messages_built_for_rows_are_each_their_recipients_and_verify(app, ctx, dkim_key):
    """The send loop builds a batch's rows one after another from one factory: each message is
    its own recipient's, with its own Message-ID, and each signature verifies."""
    import email as email_lib
    from types import SimpleNamespace

    from alerts.blasts import content
    from alerts.extensions import db
    from alerts.models import Alert

    factory = content.MessageFactory.for_alert(db.session.get(Alert, make_alert()))
    rows = [SimpleNamespace(id=n, subscriber_id=n, email=f"reader{n}@example.org", token_key=f"k{n}")
            for n in (11, 12, 13)]
    built = [factory.sign(factory.parts_row(row)) for row in rows]
    assert len(built) == 3
    for row, data in zip(rows, built, strict=True):
        msg = email_lib.message_from_bytes(data)
        assert msg["To"] == row.email and msg["Message-ID"] == factory.message_id(row.id)
        assert dkim.verify(data, dnsfunc=dns_for(dkim_key))
    assert len({email_lib.message_from_bytes(d)["List-Unsubscribe"] for d in built}) == 3


def test_verp_return_path_names_the_delivery_not_the_address(app, ctx, smtp, celery_worker,
                                                               monkeypatch):
    from alerts.mail import signed_ids as verp
    from alerts.models import Delivery, Subscriber

    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", "bounce.example.org")
    emails = add_confirmed(3)
    alert_id = make_alert()
    blasts.launch(alert_id)
    assert wait_for_state(alert_id)["state"] == "sent"
    for m in smtp.handler.wait_for(3, timeout=10):
        assert m.mail_from.endswith("@bounce.example.org")
        assert "example.org" not in m.mail_from.split("@")[0] and "sub0" not in m.mail_from
        target = verp.parse_return_path(m.mail_from)
        delivery = ctx_get(Delivery, target.ident)
        assert target.kind == "d" and delivery.alert_id == alert_id
        assert ctx_get(Subscriber, delivery.subscriber_id).email == m.rcpt_tos[0]
    forged = smtp.messages[0].mail_from.replace("+d", "+d9")
    assert verp.parse_return_path(forged) is None
    assert verp.parse_return_path("someone@bounce.example.org") is None
    assert len(emails) == 3


def ctx_get(model, ident):
    from alerts.extensions import db

    return db.session.get(model, ident)


@given(st.binary(max_size=200) | st.lists(st.sampled_from([b".", b"\r\n", b"\n", b"\r", b"a", b".."]),
                                          max_size=40).map(b"".join))
def test_dot_stuffing_is_the_rfc_5321_rule(data):
    """Every line (after "\\n", as smtplib reads lines) that starts with "." gets one more."""
    from alerts.mail.smtp import dot_stuffed

    assert dot_stuffed(data) == re.sub(rb"(?m)^\.", b"..", data)


@pytest.mark.parametrize("pipelining", [True, False])
def test_message_bytes_survive_smtp_with_and_without_pipelining(app, ctx, smtp, pipelining,
                                                                monkeypatch):
    """Dot-stuffing and CRLF: what the server stores is byte for byte what was signed."""
    from alerts.mail import smtp as mailer

    monkeypatch.setattr(smtp.handler, "pipelining", pipelining)
    data = b"Subject: t\r\nTo: a@b.org\r\n\r\n.starts with a dot\r\n..two dots\r\n.\r\nend\r\n"
    conn = mailer.connect(smtp.url)
    try:
        assert conn.has_extn("pipelining") == pipelining
        pipe = mailer.Pipeline(conn)
        pipe.send("from@x.org", "a@b.org", data, ("from@x.org", "c@d.org"))
        pipe.send("from@x.org", "c@d.org", data)
        smtp.handler.rcpt_reply = lambda a: "550 5.1.1 no such user" if a == "bad@x.org" else None
        with pytest.raises(__import__("smtplib").SMTPRecipientsRefused):
            pipe.send("from@x.org", "bad@x.org", data)
        pipe.send("from@x.org", "e@f.org", data)  # the connection still works
        # The quick check that skips stuffing must see a dot on the very first line too.
        pipe.send("from@x.org", "g@h.org", b".first\r\nnone after\r\n")
        pipe.send("from@x.org", "i@j.org", b"no line starts with a dot.\r\n")
    finally:
        conn.quit()
    got = smtp.handler.wait_for(5, timeout=5)
    assert [m.rcpt_tos for m in got] == [["a@b.org"], ["c@d.org"], ["e@f.org"], ["g@h.org"], ["i@j.org"]]
    assert all(m.data == data for m in got[:3])
    assert [m.data for m in got[3:]] == [b".first\r\nnone after\r\n", b"no line starts with a dot.\r\n"]


def test_pipeline_sends_each_message_in_one_write_with_the_next_envelope(app, ctx, smtp):
    """RFC 2920 as far as it goes: the data, then the next message's MAIL, RCPT and DATA, in one
    write; one round trip a message. Refusals still land on the right message."""
    from alerts.mail import smtp as mailer

    data = b"Subject: t\r\n\r\n.dot line\r\nbody\r\n"
    people = ["a@b.org", "bad@x.org", "c@d.org", "e@f.org"]
    smtp.handler.rcpt_reply = lambda a: "550 5.1.1 no such user" if a == "bad@x.org" else None
    conn = mailer.connect(smtp.url)
    writes = []
    real_send = conn.send
    conn.send = lambda b: (writes.append(b if isinstance(b, bytes) else b.encode()), real_send(b))[1]
    pipe = mailer.Pipeline(conn)
    refused = []
    for n, person in enumerate(people):
        then = ("from@x.org", people[n + 1]) if n + 1 < len(people) else None
        try:
            pipe.send("from@x.org", person, data, then)
        except __import__("smtplib").SMTPRecipientsRefused as exc:
            refused.append(list(exc.recipients))
    pipe.close()
    got = smtp.handler.wait_for(3, timeout=5)
    assert [m.rcpt_tos for m in got] == [["a@b.org"], ["c@d.org"], ["e@f.org"]]
    assert all(m.data == data for m in got) and refused == [["bad@x.org"]]
    # a's envelope, then a's data with bad's envelope; bad's refusal is read and RSET; c's
    # envelope again on its own, c's data with e's envelope, e's data alone.
    assert writes[1].startswith(b"Subject: t") and writes[1].endswith(
        b".\r\nMAIL FROM:<from@x.org>\r\nRCPT TO:<bad@x.org>\r\nDATA\r\n")
    assert sum(w.startswith(b"Subject: t") for w in writes) == 3
    kinds = [w.split(b"\r\n")[0].split(b":")[0].lower() for w in writes]
    assert kinds == [b"mail from", b"subject", b"rset", b"mail from", b"subject", b"subject", b"quit"]


@given(st.lists(st.binary(max_size=120), max_size=6))
def test_pipeline_reply_reader_survives_any_server_bytes(chunks):
    """What a relay answers is outside input: any bytes give a (code, text) or an smtplib error,
    and a reply line is never read past smtplib's limit."""
    import io
    import smtplib

    from alerts.mail import smtp as mailer

    class Conn:
        def __init__(self, data: bytes):
            self.file = io.BufferedReader(io.BytesIO(data))
            self.closed = False

        def close(self):
            self.closed = True

    conn = Conn(b"\r\n".join(chunks))
    for _ in range(len(chunks) + 1):
        try:
            code, text = mailer._reply(conn)
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPResponseException):
            assert conn.closed
            break
        assert isinstance(code, int) and isinstance(text, bytes)


@pytest.mark.parametrize("data, expected", [
    (b"250 2.0.0 Ok\r\n", (250, b"2.0.0 Ok")),
    (b"250-first\r\n250-second\r\n250 last\r\n", (250, b"first\nsecond\nlast")),
    (b"45x what\r\n", (-1, b"what")),
])
def test_pipeline_reply_reader_reads_replies_as_smtplib_does(data, expected):
    import io

    from alerts.mail import smtp as mailer

    conn = type("Conn", (), {"file": io.BufferedReader(io.BytesIO(data)), "close": lambda self: None})()
    assert mailer._reply(conn) == expected


def test_pipeline_reply_reader_refuses_an_endless_line():
    import io
    import smtplib

    from alerts.mail import smtp as mailer

    conn = type("Conn", (), {"file": io.BufferedReader(io.BytesIO(b"250-" + b"x" * 20000)),
                             "close": lambda self: None})()
    with pytest.raises(smtplib.SMTPResponseException) as err:
        mailer._reply(conn)
    assert err.value.smtp_code == 500


def test_pipeline_hangs_up_on_data_awaited_for_an_envelope_sent_ahead(app, ctx, smtp):
    """A batch that stops with the next envelope out (paused, cancelled) hangs up: the server
    drops that transaction. A QUIT there would be the message's first line; nothing is sent."""
    from alerts.mail import smtp as mailer

    pipe = mailer.Pipeline(mailer.connect(smtp.url))
    pipe.send("from@x.org", "a@b.org", b"Subject: one\r\n\r\nbody\r\n", ("from@x.org", "next@x.org"))
    pipe.close()
    pipe = mailer.Pipeline(mailer.connect(smtp.url))
    pipe.send("from@x.org", "b@b.org", b"Subject: two\r\n\r\nbody\r\n", ("from@x.org", "c@x.org"))
    with pytest.raises(__import__("smtplib").SMTPServerDisconnected):
        pipe.send("from@x.org", "someone-else@x.org", b"Subject: wrong\r\n\r\nbody\r\n")
    got = smtp.handler.wait_for(2, timeout=5)
    assert smtp.handler.wait_closed(timeout=5)  # both sessions over: nothing more can arrive
    assert [m.rcpt_tos for m in smtp.handler.messages] == [["a@b.org"], ["b@b.org"]]
    assert [m.message["Subject"] for m in got] == ["one", "two"]


def test_pipeline_start_returns_before_the_answer_and_finish_reads_it(app, ctx, smtp):
    """`start` writes the data and returns while the server still holds its answer; `finish`
    reads it, a refusal of the data included, and the session goes on."""
    import smtplib
    import threading

    from alerts.mail import smtp as mailer

    hold = threading.Event()
    smtp.handler.data_reply = lambda rcpt: (hold.wait(5), None)[1] if rcpt == ["a@b.org"] else (
        "554 5.6.0 message refused" if rcpt == ["c@d.org"] else None)
    pipe = mailer.Pipeline(mailer.connect(smtp.url))
    data = b"Subject: t\r\n\r\nbody\r\n"
    started = time.monotonic()
    pipe.start("from@x.org", "a@b.org", data, ("from@x.org", "c@d.org"))
    assert time.monotonic() - started < 2 and pipe.awaiting  # the server is still holding it
    with pytest.raises(RuntimeError):
        pipe.start("from@x.org", "c@d.org", data)  # one message's answer at a time
    hold.set()
    pipe.finish()
    pipe.start("from@x.org", "c@d.org", data, ("from@x.org", "e@f.org"))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        pipe.finish()
    assert refused.value.smtp_code == 554
    pipe.send("from@x.org", "e@f.org", data)
    pipe.finish()  # nothing awaited: nothing to read
    pipe.close()
    got = smtp.handler.wait_for(2, timeout=5)
    assert [m.rcpt_tos for m in got] == [["a@b.org"], ["e@f.org"]]


def test_pipeline_closed_with_an_answer_unread_quits_cleanly(app, ctx, smtp):
    """A connection closed between `start` and `finish` (the loop stopped) still ends with QUIT:
    the data was complete, so the server keeps that message, and nothing waits for an answer."""
    from alerts.mail import smtp as mailer

    pipe = mailer.Pipeline(mailer.connect(smtp.url))
    pipe.start("from@x.org", "a@b.org", b"Subject: t\r\n\r\nbody\r\n")
    pipe.close()
    assert pipe.awaiting is False
    assert [m.rcpt_tos for m in smtp.handler.wait_for(1, timeout=5)] == [["a@b.org"]]


@pytest.mark.commits
def test_the_next_message_is_signed_while_the_relay_reads_the_data(app, ctx, smtp, dkim_key,
                                                                  monkeypatch):
    """The sender does not sleep until the relay answers: the server holds each answer until
    the next recipient's message has been signed (or two seconds pass), and every message but
    the last finds it signed. Signing it only after the answer would make each one wait.
    The messages are made (not signed) several rows ahead, one after another."""
    import threading

    from alerts.models import Delivery

    monkeypatch.setattr(sending, "UNSIGNED_AHEAD", 3)  # made in groups of three: 0-2, then 3-4
    emails = add_confirmed(5)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    signed: list[str] = []
    made: list[str] = []
    events: list[str] = []
    changed = threading.Condition()
    real_sign, real_parts = content.MessageFactory.sign, content.MessageFactory.parts_row

    def sign(self, parts):
        data = real_sign(self, parts)
        with changed:
            signed.append(dict(parts[0])[b"To"].decode())
            events.append("signed")
            changed.notify_all()
        return data

    def parts_row(self, row):
        made.append(row.email)
        events.append("made")
        return real_parts(self, row)

    found = []

    def data_reply(rcpt):
        nxt = emails[emails.index(rcpt[0]) + 1] if rcpt[0] != emails[-1] else None
        with changed:
            found.append(changed.wait_for(lambda: nxt is None or nxt in signed, timeout=2))

    monkeypatch.setattr(content.MessageFactory, "sign", sign)
    monkeypatch.setattr(content.MessageFactory, "parts_row", parts_row)
    smtp.handler.data_reply = data_reply
    first, last = next(blasts.batch_ranges(alert_id, 500))
    result = blasts.send_batch(alert_id, first, last)
    assert result.sent == 5 and found == [True] * 5
    assert signed == made == emails  # each made and signed once, in order
    assert events == ["made"] * 3 + ["signed"] * 3 + ["made"] * 2 + ["signed"] * 2
    assert db.session.scalar(sa.select(sa.func.count()).where(
        Delivery.alert_id == alert_id, Delivery.status == "sent")) == 5


@pytest.mark.commits
def test_a_message_that_fails_to_build_ahead_leaves_the_one_in_flight_recorded(
        app, ctx, smtp, dkim_key, monkeypatch):
    """Making the next messages ahead must not cost this one its answer: a later row's error
    waits for that row's own turn, after this row's 250 is recorded, and then stops the
    batch as a build error does. Raised at once, it would leave a sent message unrecorded,
    to be sent again (or, among the rows made ahead, stop the batch before its first)."""
    from alerts.models import Delivery

    emails = add_confirmed(3)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    real_parts = content.MessageFactory.parts_row

    def parts_row(self, row):
        if row.email == emails[1]:
            raise ValueError("template broke")
        return real_parts(self, row)

    monkeypatch.setattr(content.MessageFactory, "parts_row", parts_row)
    first, last = next(blasts.batch_ranges(alert_id, 500))
    with pytest.raises(ValueError, match="template broke"):
        blasts.send_batch(alert_id, first, last)
    db.session.rollback()
    status = dict(db.session.execute(
        sa.select(Subscriber.email, Delivery.status).join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.alert_id == alert_id)).all())
    assert status[emails[0]] == "sent"
    assert [m.rcpt_tos for m in smtp.handler.wait_for(1, timeout=5)] == [[emails[0]]]
    assert smtp.handler.wait_closed(timeout=5)  # the batch's session is over: nothing more comes
    assert len(smtp.handler.messages) == 1


@pytest.mark.commits
def test_recorder_renews_the_lease_once_a_second_not_at_every_flush(app, ctx):
    """Each renewal rewrites every unsent row of the batch: at every 50 ms flush that was most
    of the database's work during a blast. A second apart is thirty renewals per 30 s lease."""
    from datetime import timedelta

    import sqlalchemy as sa

    from alerts.blasts.recorder import HEARTBEAT_SECONDS, Recorder
    from alerts.blasts.store import SqlBatchStore
    from alerts.extensions import db
    from alerts.models import Delivery, utcnow

    add_confirmed(3)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    first, last = next(blasts.batch_ranges(alert_id, 10))
    claim = SqlBatchStore().claim(alert_id, first, last)
    long_ago = utcnow() - timedelta(seconds=20)
    db.session.execute(sa.update(Delivery).values(claimed_at=long_ago))
    db.session.commit()

    def claimed_at():
        db.session.rollback()
        return set(db.session.scalars(sa.select(Delivery.claimed_at)))

    recorder = Recorder(db.engine, alert_id, claim, 0.05, first, last)
    for _ in range(5):
        recorder.flush()
    assert claimed_at() == {long_ago}  # five flushes within the second: no renewal
    recorder._beat_at -= HEARTBEAT_SECONDS
    recorder.flush()
    (renewed,) = claimed_at()
    assert renewed > long_ago + timedelta(seconds=15)


@pytest.mark.commits
def test_recorder_keeps_one_connection_and_replaces_it_when_it_dies(app, ctx):
    """The batch's flushes share one connection (no pool checkout and ping twenty times a
    second); when it dies, that flush keeps its 250s and records them on a fresh one."""
    import sqlalchemy as sa

    from alerts.blasts.recorder import Recorder
    from alerts.blasts.store import SqlBatchStore
    from alerts.extensions import db
    from alerts.models import Delivery

    add_confirmed(3)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    first, last = next(blasts.batch_ranges(alert_id, 10))
    claim = SqlBatchStore().claim(alert_id, first, last)
    ids = list(db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id)))
    recorder = Recorder(db.engine, alert_id, claim, 0.05, first, last)
    recorder.sent(ids[0])
    recorder.flush()
    held = recorder._conn
    recorder.sent(ids[1])
    recorder.flush()
    assert recorder._conn is held  # the same connection, flush after flush
    if db.engine.dialect.name == "postgresql":
        pid = held.exec_driver_sql("SELECT pg_backend_pid()").scalar()
        held.rollback()
        with db.engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    else:
        held.connection.dbapi_connection.close()
    recorder.sent(ids[2])
    recorder.flush()  # the write on the dead connection fails; tried again on a fresh one
    assert recorder._conn is not None and recorder._conn is not held
    db.session.rollback()
    assert set(db.session.scalars(sa.select(Delivery.status))) == {"sent"}
    assert recorder.result.sent == 3
    recorder._disconnect()


def _claimed_batch(n: int):
    import sqlalchemy as sa

    from alerts.blasts.store import SqlBatchStore
    from alerts.extensions import db
    from alerts.models import Delivery

    add_confirmed(n)
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    first, last = next(blasts.batch_ranges(alert_id, 10))
    claim = SqlBatchStore().claim(alert_id, first, last)
    ids = list(db.session.scalars(sa.select(Delivery.id).order_by(Delivery.id)))
    return alert_id, claim, first, last, ids


@pytest.mark.commits
def test_a_flush_of_250s_is_one_statement_and_one_with_marks_is_one_transaction(app, ctx, monkeypatch):
    """On PostgreSQL a flush of 250s alone is one statement (it was BEGIN, UPDATE, SELECT,
    COMMIT: four round trips, twenty times a second). A flush with more in it is still one
    transaction on that autocommitting connection: when its last step fails, nothing of it
    stays, and the next flush writes it all once (an attempt counted once, not twice)."""
    import sqlalchemy as sa

    from alerts.blasts import recorder as recorder_module
    from alerts.blasts.recorder import Recorder
    from alerts.extensions import db
    from alerts.models import Delivery, DeliveryStatus

    alert_id, claim, first, last, ids = _claimed_batch(3)
    statements: list[str] = []

    def seen(conn, cursor, sql, *args):
        statements.append(sql.split()[0].upper())

    sa.event.listen(db.engine, "before_cursor_execute", seen)
    # A short lease: the failing flush below is tried again only until it ends.
    recorder = Recorder(db.engine, alert_id, claim, 0.05, first, last, lease=0.3)
    try:
        recorder.sent(ids[0])
        recorder.flush()
        if db.engine.dialect.name == "postgresql":
            assert statements == ["WITH"]
        assert recorder.stop_reason is None  # the state came back: still sending

        recorder.mark([ids[1]], DeliveryStatus.QUEUED, "421 later", attempt=True)
        recorder.suppress("x@example.org", "hard-bounce", "550 no such user")
        real_add = recorder_module.suppressions.add

        def add_fails(*args, **kwargs):
            real_add(*args, **kwargs)
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection lost"))

        monkeypatch.setattr(recorder_module.suppressions, "add", add_fails)
        with pytest.raises(sa.exc.OperationalError):
            recorder.flush()
        db.session.rollback()
        assert db.session.get(Delivery, ids[1]).attempts == 0  # the mark did not stay alone
        monkeypatch.setattr(recorder_module.suppressions, "add", real_add)
        recorder.flush()
        db.session.rollback()
        row = db.session.get(Delivery, ids[1])
        assert (row.status, row.attempts) == (DeliveryStatus.QUEUED, 1)

        db.session.execute(sa.update(Delivery).where(Delivery.id == ids[2]).values(claim_id="another"))
        db.session.commit()
        recorder.sent(ids[2])
        recorder.flush()
        assert recorder.stop_reason == "lost-claim"  # the 250's row was someone else's by then
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", seen)
        recorder._disconnect()


@pytest.mark.slow
def test_a_signup_during_a_big_blast_is_not_queued_behind_its_batches(app, client, smtp, celery_worker,
                                                                      monkeypatch):
    """Batches wait in a queue of their own, which a worker takes from in turn with the main
    one: a confirmation asked for mid-blast leaves in a second or two, not after the blast."""
    import time

    from alerts.extensions import db
    from tests.helpers import subscribe

    monkeypatch.setitem(app.config, "BLAST_BATCH_SIZE", 5)
    with app.app_context():
        add_confirmed(400)  # 80 batches, four at a time, each message 50 ms at the server
        alert_id = make_alert()
        smtp.handler.data_reply = lambda rcpt: time.sleep(0.05) if rcpt[0].startswith("sub") else None
        blasts.launch(alert_id)
    while len(smtp.messages) < 10:
        time.sleep(0.02)
    asked = time.monotonic()
    subscribe(client, "midblast@example.org", apply=False)  # the signup task, then the email task
    while not any(m.rcpt_tos == ["midblast@example.org"] for m in list(smtp.messages)):
        assert time.monotonic() - asked < 8, "the confirmation waited behind the blast's batches"
        time.sleep(0.05)
    waited = time.monotonic() - asked
    with app.app_context():
        db.session.rollback()
        status = blasts.status(alert_id)
    print(f"confirmation after {waited:.1f} s; blast at {status['sent']} of 400")
    assert status["state"] == "sending" and status["sent"] < 300  # well before the blast's end
    with app.app_context():
        assert wait_for_state(alert_id, timeout=120)["state"] == "sent"


def _recorder_on(engine, alert_id: int, lease: float):
    """A batch's recorder writing through `engine`, with one 250 waiting."""

    from alerts.blasts.recorder import Recorder
    from alerts.blasts.store import SqlBatchStore
    from alerts.extensions import db
    from alerts.models import Delivery

    blasts.start_blast(alert_id)
    first, last = next(blasts.batch_ranges(alert_id, 10))
    claim = SqlBatchStore().claim(alert_id, first, last)
    recorder = Recorder(engine, alert_id, claim, 0.05, first, last, lease=lease)
    recorder.sent(db.session.scalar(sa.select(sa.func.min(Delivery.id))))
    return recorder


@pytest.mark.commits
def test_recorder_tries_a_flush_again_until_the_database_answers(app, ctx, monkeypatch):
    """A database that refuses connections for a while (a restart): the flush waits for
    it, within the lease, and the 250 is recorded once it answers."""

    from alerts.blasts import recorder as recording
    from alerts.extensions import db

    monkeypatch.setattr(recording, "RETRY_FIRST_SECONDS", 0.01)
    add_confirmed(2)
    alert_id = make_alert()
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    refusals = [0]

    @sa.event.listens_for(engine, "do_connect")
    def refuse(*_):
        if refusals[0] < 3:
            refusals[0] += 1
            raise sa.exc.OperationalError("connect", {}, Exception("the database is starting up"))

    rec = _recorder_on(engine, alert_id, lease=30)
    rec.flush()
    rec._disconnect()
    engine.dispose()
    assert refusals[0] == 3 and rec.result.sent == 1
    db.session.rollback()
    assert blasts.counts(alert_id)["sent"] == 1


@pytest.mark.commits
def test_recorder_gives_up_at_the_end_of_the_lease_keeping_the_outcomes(app, ctx, tmp_path,
                                                                       monkeypatch):
    """Past the lease the rows may be another worker's: the flush stops trying and raises,
    the 250s still held (nothing is claimed as recorded)."""

    from alerts.blasts import recorder as recording

    monkeypatch.setattr(recording, "RETRY_FIRST_SECONDS", 0.01)
    add_confirmed(2)
    alert_id = make_alert()
    away = sa.create_engine(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}")
    rec = _recorder_on(away, alert_id, lease=0.3)
    started = time.monotonic()
    with pytest.raises(sa.exc.OperationalError):
        rec.flush()
    assert 0.2 < time.monotonic() - started < 5
    assert rec.result.sent == 0 and len(rec._sent) == 1
    away.dispose()


def test_a_stalled_blast_shows_no_rate_and_no_time_left(app, staff_client, monkeypatch):
    """Nothing sent for over STALLED_SECONDS (15) with rows waiting: "stalled since HH:MM" in the
    organisation's zone, in place of a rate and a time left made up from old sends."""
    from datetime import timedelta

    from alerts.blasts import progress
    from alerts.models import Alert, Delivery, utcnow

    monkeypatch.setitem(app.config, "ORG_TIMEZONE", "America/New_York")
    with app.app_context():
        add_confirmed(10)
        alert_id = make_alert()
        blasts.start_blast(alert_id)
        last = utcnow().replace(hour=15, minute=7, second=0, microsecond=0) - timedelta(days=1)
        db.session.get(Alert, alert_id).started_at = last - timedelta(seconds=20)
        rows = db.session.scalars(sa.select(Delivery).where(Delivery.alert_id == alert_id)
                                  .order_by(Delivery.id)).all()
        for n, row in enumerate(rows[:4]):
            row.status, row.sent_at = "sent", last - timedelta(seconds=3 * (3 - n))
        db.session.commit()
        moving = progress.status(alert_id, now=last + timedelta(seconds=5))
        assert moving["rate_per_second"] > 0 and moving["seconds_left"] is not None
        assert moving["stalled_since"] is None
        assert progress.status(alert_id, now=last + timedelta(seconds=15))["stalled_since"] is None
        stalled = progress.status(alert_id, now=last + timedelta(seconds=16))
        assert stalled["rate_per_second"] is None and stalled["seconds_left"] is None
        assert stalled["stalled_since"] == last.isoformat()
        local = last.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        assert stalled["stalled_words"] == f"stalled since {local:%H:%M %Z}"
        # Nothing sent at all, 31 s after the start: stalled since the start.
        db.session.execute(sa.update(Delivery).values(status="queued", sent_at=None))
        db.session.commit()
        never = progress.status(alert_id, now=last + timedelta(seconds=11))
        assert never["stalled_since"] == (last - timedelta(seconds=20)).isoformat()
        local = (last - timedelta(seconds=20)).astimezone(local.tzinfo)
    # The page and its JSON, on the real clock: the blast started a day ago.
    status = staff_client.get(f"/staff/alerts/{alert_id}/status.json").get_json()
    assert status["rate_per_second"] is None and status["stalled_words"]
    page = staff_client.get(f"/staff/alerts/{alert_id}").get_data(as_text=True)
    assert '<dd data-field="rate">—</dd>' in page
    assert f'<dd data-field="seconds_left">stalled since {local:%H:%M %Z}</dd>' in page
    out = app.test_cli_runner().invoke(args=["alert", "status", str(alert_id)]).output
    assert "stalled since" in out and "messages/s" not in out
