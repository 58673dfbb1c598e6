"""The signup -> confirm -> unsubscribe path, and every way it can be abused or go wrong."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa
from itsdangerous import TimestampSigner

from alerts.extensions import db
from alerts.models import ConsentRecord, Subscriber, utcnow
from alerts.subscribers.tokens import read_confirm_token
from alerts.testing.mailcatcher import MailCatcher
from tests.helpers import (
    apply_signups,
    confirm_token_for,
    csrf_token,
    link_in,
    subscribe,
    unsubscribe_token_for,
)


def subscriber(app, email: str) -> Subscriber | None:
    with app.app_context():
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
        if sub is not None:
            db.session.expunge(sub)
        return sub


def consents(app, email: str) -> list[tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(
            sa.select(ConsentRecord.event, ConsentRecord.ip)
            .join(Subscriber)
            .where(Subscriber.email == email)
            .order_by(ConsentRecord.id)
        )
        return [tuple(r) for r in rows]


def path_of(url: str) -> str:
    return url.split("alerts.example.org", 1)[1]


def confirm_via_email(client, smtp, count: int = 1) -> str:
    """The link in the `count`-th confirmation email (welcome emails after confirming aside)."""
    deadline = time.monotonic() + 20
    while True:
        msgs = [m for m in smtp.handler.messages if m.message["Subject"].startswith("Confirm")]
        if len(msgs) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(msgs) == count
    return path_of(link_in(msgs[-1], "/confirm/"))


def test_full_path_signup_confirm_unsubscribe(app, client, smtp, celery_worker):
    resp = subscribe(client, "Ada.Lovelace@Example.ORG", headers={"User-Agent": "pytest-browser"})
    assert resp.status_code == 200
    assert "Check your inbox" in resp.get_data(as_text=True)
    sub = subscriber(app, "Ada.Lovelace@example.org")  # domain lower-cased, local part kept
    assert sub.status == "pending"

    [msg] = smtp.handler.wait_for(1, timeout=20)
    assert msg.rcpt_tos == ["Ada.Lovelace@example.org"]
    mail = msg.message
    assert mail.get_content_type() == "multipart/alternative"
    assert "Confirm your subscription" in mail["Subject"]
    html = mail.get_body(("html",)).get_content()
    assert 'style="' in html  # CSS inlined
    assert "1 Test Street, Testville" in html
    confirm_path = path_of(link_in(msg, "/confirm/"))
    assert confirm_path in html

    # GET only shows a button (link scanners must not confirm).
    page = client.get(confirm_path)
    assert page.status_code == 200 and "Yes, subscribe me" in page.get_data(as_text=True)
    assert subscriber(app, "Ada.Lovelace@example.org").status == "pending"

    done = client.post(confirm_path, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert done.status_code == 200 and "subscribed" in done.get_data(as_text=True)
    sub = subscriber(app, "Ada.Lovelace@example.org")
    assert sub.status == "confirmed" and sub.confirmed_at is not None
    assert consents(app, sub.email) == [("signup", "198.51.100.7"), ("confirm", "203.0.113.9")]
    with app.app_context():
        signup = db.session.scalar(sa.select(ConsentRecord).where(ConsentRecord.event == "signup"))
        assert signup.user_agent == "pytest-browser"
        assert signup.consent_text_version == app.config["CONSENT_TEXT_VERSION"]

    with app.app_context():
        unsub_path = f"/unsubscribe/{unsubscribe_token_for(sub.id)}"
    page = client.get(unsub_path)
    assert page.status_code == 200 and "Unsubscribe" in page.get_data(as_text=True)
    assert subscriber(app, sub.email).status == "confirmed"  # GET changes nothing
    gone = client.post(unsub_path)
    assert gone.status_code == 200 and "unsubscribed" in gone.get_data(as_text=True)
    assert subscriber(app, sub.email).status == "unsubscribed"
    assert consents(app, sub.email)[-1][0] == "unsubscribe:link"


def test_one_click_unsubscribe_needs_no_cookie_and_never_redirects(app, smtp):
    with app.app_context():
        sub = Subscriber(email="click@example.org", status="confirmed")
        db.session.add(sub)
        db.session.commit()
        token = unsubscribe_token_for(sub.id)
    bare = app.test_client(use_cookies=False)
    resp = bare.post(
        f"/unsubscribe/{token}",
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert resp.status_code == 200
    assert "Location" not in resp.headers
    assert subscriber(app, "click@example.org").status == "unsubscribed"
    assert consents(app, "click@example.org")[-1][0] == "unsubscribe:one-click"
    # Idempotent: a second click is still a 200.
    again = bare.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200


def test_honeypot_answers_normally_and_sends_nothing(app, client, smtp, celery_worker):
    resp = subscribe(client, "bot@example.org", website="http://spam.example")
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    assert subscriber(app, "bot@example.org") is None
    subscribe(client, "human@example.org")
    smtp.handler.wait_for(1, timeout=20)
    celery_worker.wait_idle()
    assert [m.rcpt_tos for m in smtp.messages] == [["human@example.org"]]


def test_same_answer_for_new_pending_confirmed_and_unsubscribed(app, client, smtp):
    with app.app_context():
        db.session.add_all(
            [
                Subscriber(email="pending@example.org", status="pending", confirm_nonce="x"),
                Subscriber(email="confirmed@example.org", status="confirmed"),
                Subscriber(email="gone@example.org", status="unsubscribed"),
            ]
        )
        db.session.commit()
    bodies = set()
    for i, email in enumerate(
        ["new@example.org", "pending@example.org", "confirmed@example.org", "gone@example.org"]
    ):
        resp = subscribe(client, email, ip=f"198.51.100.{i + 20}")
        assert resp.status_code == 200
        body = resp.get_data(as_text=True)
        assert email in body  # echoed, so a typo can be spotted
        bodies.add(body.replace(csrf_token(client), "").replace(email, "ADDRESS"))
    assert len(bodies) == 1
    # Re-subscribing after unsubscribing goes through double opt-in again, and the address
    # stays unsubscribed until its owner confirms (nobody else's signup can flip it).
    gone = subscriber(app, "gone@example.org")
    assert gone.status == "unsubscribed" and gone.confirm_nonce is not None
    assert subscriber(app, "confirmed@example.org").status == "confirmed"


def test_rate_limit_per_ip_gives_readable_429(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SUBSCRIBE_RATE_LIMIT", "3/minute")
    codes = [subscribe(client, f"r{i}@example.org", ip="192.0.2.50").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    resp = subscribe(client, "r9@example.org", ip="192.0.2.50")
    assert resp.status_code == 429
    assert "Too many requests" in resp.get_data(as_text=True)
    assert "Retry-After" in resp.headers
    # Another visitor is not affected.
    assert subscribe(client, "other@example.org", ip="192.0.2.51").status_code == 200
    assert subscriber(app, "r3@example.org") is None


def test_cooldown_stops_subscription_bombing(app, client, smtp, celery_worker):
    # Many signups of one victim's address, from many IPs, make one email.
    for i in range(6):
        assert subscribe(client, "victim@example.org", ip=f"203.0.113.{i + 1}").status_code == 200
    smtp.handler.wait_for(1, timeout=20)
    celery_worker.wait_idle()
    assert len([m for m in smtp.messages if m.rcpt_tos == ["victim@example.org"]]) == 1
    # Each attempt is still recorded as consent evidence.
    assert [e for e, _ in consents(app, "victim@example.org")] == ["signup"] * 6


def test_after_cooldown_a_new_email_is_sent_with_the_same_working_link(
    app, client, smtp, celery_worker, monkeypatch
):
    monkeypatch.setitem(app.config, "CONFIRM_COOLDOWN_SECONDS", 0)
    subscribe(client, "twice@example.org")
    first = confirm_via_email(client, smtp, 1)
    sent_at = subscriber(app, "twice@example.org").last_confirmation_at
    while utcnow() <= sent_at:  # a cooldown of 0 s is over once the clock has moved on
        pass
    subscribe(client, "twice@example.org")
    second = confirm_via_email(client, smtp, 2)
    with app.app_context():  # one pending period, one nonce: either email's link works
        assert read_confirm_token(first.rsplit("/", 1)[1]) == read_confirm_token(second.rsplit("/", 1)[1])
    assert client.post(second).status_code == 200
    assert "already subscribed" in client.post(first).get_data(as_text=True)
    assert subscriber(app, "twice@example.org").status == "confirmed"


@pytest.mark.parametrize(
    "email",
    [
        "",
        "   ",
        "not-an-email",
        "a@b",
        "a" * 250 + "@example.org",
        "a@b.org\r\nBcc: x@y.org",
        "a@b.org\nBcc: x@y.org",
        "a@b.org%0d%0aBcc:x@y.org",
        "<script>@example.org",
        "ünïcode@example.org",
    ],
)
def test_bad_addresses_get_400_and_no_email(app, client, smtp, email):
    resp = subscribe(client, email)
    assert resp.status_code == 400
    body = resp.get_data(as_text=True)
    assert 'role="alert"' in body  # the form comes back with the problem named
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0
    assert smtp.messages == []


def test_missing_email_field_and_missing_csrf_are_400(app, client):
    token = csrf_token(client)
    assert client.post("/subscribe", data={"csrf_token": token}).status_code == 400
    resp = client.post("/subscribe", data={"email": "a@example.org", "website": ""})
    assert resp.status_code == 400
    assert "expired" in resp.get_data(as_text=True)
    assert subscriber(app, "a@example.org") is None


def test_overlong_body_is_rejected(app, client):
    token = csrf_token(client)
    resp = client.post("/subscribe", data={"email": "x" * 5_000_000, "csrf_token": token})
    assert resp.status_code in (400, 413)


def _pending(app, email="p@example.org", nonce="n1") -> int:
    with app.app_context():
        sub = Subscriber(email=email, status="pending", confirm_nonce=nonce)
        db.session.add(sub)
        db.session.commit()
        return sub.id


def signed_ago(app, monkeypatch, seconds: int, make):
    """A token as signed `seconds` ago (the signer's clock is turned back, then restored)."""
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - seconds)
    with app.app_context():
        token = make()
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    return token


def test_tampered_confirm_token(app, client):
    sid = _pending(app)
    with app.app_context():
        token = confirm_token_for(sid, "n1")
    bad = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    for method in (client.get, client.post):
        resp = method(f"/confirm/{bad}")
        assert resp.status_code == 400
        assert "isn’t valid" in resp.get_data(as_text=True)
    assert subscriber(app, "p@example.org").status == "pending"


def test_expired_confirm_token(app, client, monkeypatch):
    sid = _pending(app)
    token = signed_ago(app, monkeypatch, 48 * 3600 + 5, lambda: confirm_token_for(sid, "n1"))
    resp = client.post(f"/confirm/{token}")
    assert resp.status_code == 410
    assert "expired" in resp.get_data(as_text=True)
    assert subscriber(app, "p@example.org").status == "pending"


def test_confirm_token_just_inside_48_hours_works(app, client, monkeypatch):
    sid = _pending(app)
    token = signed_ago(app, monkeypatch, 47 * 3600, lambda: confirm_token_for(sid, "n1"))
    assert client.post(f"/confirm/{token}").status_code == 200
    assert subscriber(app, "p@example.org").status == "confirmed"


def test_cross_purpose_tokens_are_refused(app, client):
    sid = _pending(app)
    with app.app_context():
        unsub = unsubscribe_token_for(sid)
        confirm = confirm_token_for(sid, "n1")
    assert client.post(f"/confirm/{unsub}").status_code == 400
    assert client.post(f"/unsubscribe/{confirm}").status_code == 400
    assert subscriber(app, "p@example.org").status == "pending"


def test_replayed_confirm_token_is_single_use(app, client):
    sid = _pending(app)
    with app.app_context():
        token = confirm_token_for(sid, "n1")
    assert client.post(f"/confirm/{token}").status_code == 200
    again = client.post(f"/confirm/{token}")
    assert again.status_code == 200 and "already subscribed" in again.get_data(as_text=True)
    # After an unsubscribe the old link must not subscribe the address again.
    with app.app_context():
        unsub = unsubscribe_token_for(sid)
    client.post(f"/unsubscribe/{unsub}")
    replay = client.post(f"/confirm/{token}")
    assert replay.status_code == 410
    assert "already been used" in replay.get_data(as_text=True)
    assert subscriber(app, "p@example.org").status == "unsubscribed"


def test_old_confirm_link_dies_when_a_new_pending_period_starts(app, client, smtp, celery_worker):
    subscribe(client, "cycle@example.org")
    old = confirm_via_email(client, smtp, 1)
    client.post(old)
    sub = subscriber(app, "cycle@example.org")
    with app.app_context():
        client.post(f"/unsubscribe/{unsubscribe_token_for(sub.id)}")
    app.config["CONFIRM_COOLDOWN_SECONDS"], saved = 0, app.config["CONFIRM_COOLDOWN_SECONDS"]
    try:
        subscribe(client, "cycle@example.org")
        new = confirm_via_email(client, smtp, 2)
    finally:
        app.config["CONFIRM_COOLDOWN_SECONDS"] = saved
    assert new != old
    assert client.post(old).status_code == 410
    assert client.post(new).status_code == 200
    assert subscriber(app, "cycle@example.org").status == "confirmed"


def test_key_rotation_keeps_old_links_working(app, client, monkeypatch):
    sid = _pending(app)
    with app.app_context():
        old_unsub = unsubscribe_token_for(sid)
        old_confirm = confirm_token_for(sid, "n1")
    monkeypatch.setitem(app.config, "SECRET_KEYS", ["new-key", "test-key-1"])
    with app.app_context():
        new_unsub = unsubscribe_token_for(sid)
    assert new_unsub != old_unsub
    assert client.post(f"/confirm/{old_confirm}").status_code == 200
    assert client.post(f"/unsubscribe/{old_unsub}").status_code == 200
    assert subscriber(app, "p@example.org").status == "unsubscribed"
    # A key that was dropped from the list no longer verifies.
    monkeypatch.setitem(app.config, "SECRET_KEYS", ["new-key"])
    assert client.get(f"/unsubscribe/{old_unsub}").status_code == 400
    assert client.get(f"/unsubscribe/{new_unsub}").status_code == 200


def test_unsubscribe_tokens_never_expire(app, client, monkeypatch):
    sid = _pending(app)
    token = signed_ago(app, monkeypatch, 5 * 365 * 86400, lambda: unsubscribe_token_for(sid))
    with app.app_context():
        assert token == unsubscribe_token_for(sid)  # no timestamp in it: nothing can expire
    assert client.post(f"/unsubscribe/{token}").status_code == 200


def test_smtp_down_while_confirming_retries_until_it_is_back(app, client, celery_worker, monkeypatch):
    from celery.signals import task_retry

    down = MailCatcher()  # a port reserved but not yet listening
    monkeypatch.setitem(app.config, "SMTP_URL", down.url.replace(":0", f":{down.port}"))
    failed = threading.Event()

    def on_retry(**_):
        failed.set()

    task_retry.connect(on_retry, weak=False)
    try:
        subscribe(client, "patient@example.org")
        assert failed.wait(15)  # an attempt has failed against the closed port, and will retry
    finally:
        task_retry.disconnect(on_retry)
    assert down.messages == []
    down.start()
    try:
        msgs = down.handler.wait_for(1, timeout=30)
        assert [m.rcpt_tos for m in msgs] == [["patient@example.org"]]
        celery_worker.wait_idle()  # no retry left waiting for its time
        assert len(down.messages) == 1  # delivered once, not once per retry
    finally:
        down.stop()


def test_healthz_reports_each_dependency(app, client, monkeypatch):
    ok = client.get("/healthz")
    assert ok.status_code == 200 and ok.json == {"status": "ok", "database": "ok", "redis": "ok"}
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")
    bad = client.get("/healthz")
    assert bad.status_code == 503
    assert "redis" in bad.json and "database" not in bad.json


def test_action_center_lists_open_actions_in_order(app, client):
    from alerts.models import Action
    from tests.helpers import SEED_ACTIONS, seed_actions

    with app.app_context():
        seed_actions()
        assert seed_actions() == (0, 7)  # idempotent
        closed = db.session.scalar(sa.select(Action).where(Action.title.like("Sign the Healthy%")))
        closed.is_open = False
        db.session.commit()
    page = client.get("/").get_data(as_text=True)
    titles = [t for t, _, _ in SEED_ACTIONS if not t.startswith("Sign the Healthy")]
    positions = [page.index(t) for t in titles]
    assert positions == sorted(positions)
    assert "Sign the Healthy Kids" not in page
    assert "Advocate for Kids" in page and "Please leave this field empty" in page


def test_concurrent_signups_for_one_new_address(app, smtp, celery_worker):
    """Racing inserts of the same address: every request answers normally, one row, one email."""
    import threading

    results = []
    barrier = threading.Barrier(6)

    def run(i):
        client = app.test_client()
        token = csrf_token(client)
        barrier.wait()
        resp = client.post("/subscribe", data={"email": "race@example.org", "csrf_token": token},
                           environ_base={"REMOTE_ADDR": f"198.51.100.{60 + i}"})
        results.append(resp.status_code)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [303] * 6  # each redirected to the answer page
    with app.app_context():
        apply_signups()  # those the worker has not applied yet (each is applied once either way)
        assert db.session.scalar(
            sa.select(sa.func.count()).select_from(Subscriber).where(Subscriber.email == "race@example.org")
        ) == 1
        assert len(consents(app, "race@example.org")) == 6
    smtp.handler.wait_for(1, timeout=20)
    celery_worker.wait_idle()
    assert len(smtp.messages) == 1


def test_a_confirmation_that_could_not_be_queued_is_sent_by_the_sweep(app, client, smtp, celery_worker,
                                                                      monkeypatch):
    """The broker is away when the form is posted: the visitor gets the usual answer, the
    cooldown is released, and the next sweep queues the confirmation."""
    from kombu.exceptions import OperationalError

    from alerts import queueing, tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(queueing, "_send", broker_down)
    resp = subscribe(client, "unlucky@example.org")
    assert resp.status_code == 200 and "Check your inbox" in resp.get_data(as_text=True)
    sub = subscriber(app, "unlucky@example.org")
    assert sub.status == "pending" and sub.last_confirmation_at is None
    monkeypatch.undo()
    celery_worker.wait_idle()
    assert smtp.messages == []
    with app.app_context():
        result = tasks.sweep.run()
    assert result["confirmations_queued"] == 1
    [msg] = smtp.handler.wait_for(1, timeout=20)
    assert msg.rcpt_tos == ["unlucky@example.org"]
    with app.app_context():
        assert tasks.sweep.run()["confirmations_queued"] == 0  # claimed once, not again


def test_the_answer_page_echoes_only_an_address_this_site_signed(app, client):
    """The address is echoed from a signed cookie of its own, not the session (no session write
    per signup): one that was not signed here shows nothing, and a failed post clears it."""
    resp = subscribe(client, "echo@example.org", apply=False, follow=False)
    assert resp.status_code == 303
    assert client.get_cookie("signup_email", path="/subscribe") is not None
    assert "session=" not in resp.headers.get("Set-Cookie", "")  # the session is not re-signed
    assert "echo@example.org" in client.get("/subscribe").get_data(as_text=True)
    client.set_cookie("signup_email", "victim@example.org.forged", path="/subscribe")
    page = client.get("/subscribe")
    assert page.status_code == 302 and "victim@example.org" not in page.get_data(as_text=True)
    subscribe(client, "echo@example.org", apply=False)
    bad = client.post("/subscribe", data={"email": "not an address", "website": "",
                                          "csrf_token": csrf_token(client)})
    assert bad.status_code == 400
    assert client.get("/subscribe").status_code == 302  # no earlier address shown as sent
