"""Webhooks: the SSRF rule, the outbox written with each event, signed delivery and its retries,
disabling, the CLI and the staff pages, against a real HTTP receiver on a loopback port."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from alerts import webhooks
from alerts.extensions import db
from alerts.models import (
    Subscriber,
    SubscriberStatus,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
    WebhookState,
    utcnow,
)
from alerts.subscribers import privacy, subscriptions
from alerts.webhooks import delivery, endpoints, outbox, targets
from tests.helpers import csrf_token
from tests.webhook_helpers import Receiver, verify

REQ = subscriptions.Request(ip="203.0.113.9", user_agent="pytest", source="test")


@pytest.fixture
def insecure(app):
    """WEBHOOK_ALLOW_INSECURE=1, as in development and tests (the receiver is on loopback http)."""
    app.config["WEBHOOK_ALLOW_INSECURE"] = True
    yield
    app.config["WEBHOOK_ALLOW_INSECURE"] = False
    outbox.forget()


@pytest.fixture
def quick(app):
    """A short timeout and schedule, as a test runs them."""
    saved = {k: app.config[k] for k in ("WEBHOOK_TIMEOUT_SECONDS", "WEBHOOK_RETRY_SCHEDULE")}
    app.config.update(WEBHOOK_TIMEOUT_SECONDS=0.5, WEBHOOK_RETRY_SCHEDULE=[5.0, 300.0])
    yield
    app.config.update(saved)


def _endpoint(url: str, *events: str) -> WebhookEndpoint:
    endpoint = endpoints.add(url, events or webhooks.EVENT_TYPES, by="test")
    db.session.commit()
    return endpoint


def _messages() -> list[WebhookMessage]:
    return list(db.session.scalars(sa.select(WebhookMessage).order_by(WebhookMessage.id)))


def _subscriber(email: str = "ada@example.org", status: str = SubscriberStatus.CONFIRMED) -> Subscriber:
    sub = Subscriber(email=email, status=status, confirmed_at=utcnow(), source="test")
    db.session.add(sub)
    db.session.flush()
    return sub


# -- SSRF -----------------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.16.0.1", "private"),
    ("192.168.1.1", "private"), ("169.254.169.254", "link-local"), ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"), ("0.0.0.0", "unspecified"), ("100.64.0.1", "not public"),
    ("::1", "loopback"), ("fe80::1", "link-local"), ("ff02::1", "multicast"), ("fc00::1", "private"),
    ("::", "unspecified"), ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"), ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
]


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_each_address_class_that_is_not_public_is_refused(address, why):
    import ipaddress

    assert targets.refusal(ipaddress.ip_address(address)) == why
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(targets.UnsafeTarget, match="public addresses only"):
        targets.check(f"https://{host}/hook", allow_insecure=False)
    targets.check(f"http://{host}/hook", allow_insecure=True)  # development and tests only


def test_a_public_address_passes_and_http_or_credentials_do_not():
    targets.check("https://8.8.8.8/hook", allow_insecure=False)
    targets.check("https://[2001:4860:4860::8888]/hook", allow_insecure=False)
    for url, says in [("http://8.8.8.8/hook", "https:// URLs only"), ("ftp://8.8.8.8/", "https:// URLs only"),
                      ("https://user:pw@8.8.8.8/", "no user name"), ("https:///nohost", "names no host"),
                      ("https://8.8.8.8:99999/", "not a URL")]:
        with pytest.raises(targets.UnsafeTarget, match=says):
            targets.check(url, allow_insecure=False)


def test_a_name_that_resolves_to_loopback_is_refused_on_add_and_on_send(app, ctx):
    with pytest.raises(endpoints.EndpointError, match="localhost resolves to .* a loopback address"):
        endpoints.add("https://localhost/hook", ["complaint"], by="test")
    with Receiver() as receiver:
        answer = targets.post(receiver.url.replace("127.0.0.1", "localhost"), b"{}", {}, timeout=2,
                              allow_insecure=False)
        assert answer.status is None and "https:// URLs only" in (answer.error or "")
        https = f"https://localhost:{receiver.server.server_port}/hooks"
        answer = targets.post(https, b"{}", {}, timeout=2, allow_insecure=False)
        assert answer.status is None and "loopback" in (answer.error or "")
        assert receiver.requests == []  # nothing reached it


def test_the_connection_goes_to_the_checked_address_with_the_hosts_name(insecure):
    """The request is made to the address that was checked (no second lookup to rebind), and
    names the host in its Host header as a plain request would."""
    with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        answer = targets.post(url, b"{}", {"X-Test": "1"}, timeout=2, allow_insecure=True)
        assert answer.status == 200, answer
        assert receiver.requests[0].headers["host"] == f"localhost:{receiver.server.server_port}"


def test_redirects_are_not_followed_and_answers_are_capped(insecure):
    with Receiver(lambda n, r: (302, 0.0), body=b"x" * 200_000) as receiver:
        answer = targets.post(receiver.url, b"{}", {}, timeout=2, allow_insecure=True)
    assert answer.status == 302 and not answer.ok
    assert len(answer.body) == targets.SNIPPET
    assert len(receiver.requests) == 1


# -- the outbox -------------------------------------------------------------------------------


def test_no_endpoint_no_rows_and_no_query_once_cached(app, ctx):
    outbox.forget()
    assert outbox.emit(webhooks.COMPLAINT, {"x": 1}) == 0
    statements = []

    def listener(conn, cursor, statement, *rest):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert outbox.emit(webhooks.COMPLAINT, {"x": 1}) == 0
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
    assert statements == [] and _messages() == []


def test_one_row_per_enabled_endpoint_that_wants_the_type(app, ctx, insecure):
    wants = _endpoint("http://127.0.0.1:9/a", webhooks.SUBSCRIBER_CONFIRMED, webhooks.COMPLAINT)
    _endpoint("http://127.0.0.1:9/b", webhooks.SIGNATURE_CREATED)
    off = _endpoint("http://127.0.0.1:9/c", webhooks.SUBSCRIBER_CONFIRMED)
    endpoints.disable(off, "test")
    gone = _endpoint("http://127.0.0.1:9/d", webhooks.SUBSCRIBER_CONFIRMED)
    endpoints.remove(gone.id)
    db.session.commit()
    sub = _subscriber(status=SubscriberStatus.PENDING)
    sub.confirm_nonce = "n" * 32
    from alerts.subscribers.tokens import make_confirm_token

    assert subscriptions.confirm(make_confirm_token(sub.token_key, sub.confirm_nonce), REQ) == "confirmed"
    [message] = _messages()
    assert message.endpoint_id == wants.id and message.event_type == webhooks.SUBSCRIBER_CONFIRMED
    payload = json.loads(message.payload)
    assert payload["type"] == "subscriber.confirmed" and payload["data"]["email"] == "ada@example.org"
    assert payload["data"]["id"] == sub.id and payload["timestamp"]
    assert message.msg_id.startswith("msg_") and message.state == WebhookState.PENDING


def test_the_row_goes_with_the_events_transaction(app, ctx, insecure):
    _endpoint("http://127.0.0.1:9/a", webhooks.SUBSCRIBER_UNSUBSCRIBED)
    sub = _subscriber()
    db.session.commit()
    nested = db.session.begin_nested()
    subscriptions.unsubscribe(sub.id, REQ)
    assert len(_messages()) == 1
    nested.rollback()  # the unsubscribe did not happen: neither did its event
    assert _messages() == []
    subscriptions.unsubscribe(sub.id, REQ)
    db.session.commit()
    [message] = _messages()
    assert json.loads(message.payload)["data"]["via"] == "link"


def test_an_erasure_says_the_id_alone_and_scrubs_earlier_messages(app, ctx, insecure):
    _endpoint("http://127.0.0.1:9/a", webhooks.SUBSCRIBER_UNSUBSCRIBED, webhooks.SUBSCRIBER_ERASED)
    sub = _subscriber("grace_100%@example.org")
    subscriptions.unsubscribe(sub.id, REQ)
    db.session.commit()
    assert "grace_100%@example.org" in _messages()[0].payload
    assert privacy.erase_subscriber(sub.id, by="subscriber")
    db.session.commit()
    before, erased = _messages()
    assert json.loads(erased.payload)["data"] == {"id": sub.id}
    assert "grace" not in before.payload and before.state == WebhookState.FAILED  # never sent now


def test_an_import_writes_its_events_in_one_statement(app, ctx, insecure):
    from alerts.subscribers import import_applier
    from alerts.subscribers.import_report import DOCUMENTED, ImportReport

    _endpoint("http://127.0.0.1:9/a", webhooks.SUBSCRIBER_CONFIRMED)
    _endpoint("http://127.0.0.1:9/b", webhooks.SUBSCRIBER_CONFIRMED)
    rows = [import_applier.Row(line=i, raw=f"p{i}@example.org", email=f"p{i}@example.org", source="csv")
            for i in range(300)]
    inserts = []
    sa.event.listen(db.engine, "before_cursor_execute",
                    listener := lambda conn, cur, stmt, params, ctx_, many: inserts.append(many)
                    if stmt.startswith("INSERT INTO webhook_messages") else None)
    try:
        import_applier.Applier(DOCUMENTED, "v1", False, ImportReport(DOCUMENTED, False)).apply(rows)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
    assert len(_messages()) == 600
    assert len(inserts) <= 2, inserts  # one executemany (insertmanyvalues may split it in two)


# -- delivery -------------------------------------------------------------------------------


def test_a_delivery_is_signed_and_verifies_with_standardwebhooks(app, ctx, insecure):
    with Receiver() as receiver:
        endpoint = _endpoint(receiver.url, webhooks.COMPLAINT)
        outbox.emit(webhooks.COMPLAINT, {"email": "a@example.org"})
        db.session.commit()
        [message] = _messages()
        assert delivery.deliver([message.id]).delivered == 1
    [got] = receiver.requests
    assert verify(endpoint.secret, got)["data"] == {"email": "a@example.org"}
    assert got.headers["webhook-id"] == message.msg_id
    assert got.body == message.payload.encode()
    # Signed with the secret's base64 part: another secret does not verify.
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(endpoints.new_secret()).verify(got.body, got.headers)
    db.session.refresh(message)
    assert message.state == WebhookState.DELIVERED and message.last_status == 200
    [attempt] = db.session.scalars(sa.select(WebhookAttempt)).all()
    assert attempt.status == 200 and attempt.response == "ok" and attempt.latency_ms >= 0


def test_failures_are_retried_on_schedule_with_the_same_webhook_id(app, ctx, insecure, quick):
    answers = iter([(500, 0.0), (0, 2.0), (200, 0.0)])  # an error, a stall past the timeout, then fine
    with Receiver(lambda n, r: next(answers)) as receiver:
        _endpoint(receiver.url, webhooks.COMPLAINT)
        outbox.emit(webhooks.COMPLAINT, {"n": 1})
        db.session.commit()
        [message] = _messages()
        assert delivery.deliver([message.id]).failed == 1
        db.session.refresh(message)
        assert message.state == WebhookState.PENDING and message.last_status == 500
        wait = message.next_attempt_at - utcnow()
        assert timedelta(seconds=4) < wait <= timedelta(seconds=5)
        assert delivery.deliver([message.id]).skipped == 1  # not due yet: nothing sent
        message.next_attempt_at = utcnow()
        db.session.commit()
        assert delivery.deliver([message.id]).failed == 1  # stalled: no answer within 0.5 s
        db.session.refresh(message)
        assert message.last_status is None and "no answer within 0.5 s" in message.last_error
        assert timedelta(seconds=290) < message.next_attempt_at - utcnow() <= timedelta(seconds=300)
        message.next_attempt_at = utcnow()
        db.session.commit()
        assert delivery.deliver([message.id]).delivered == 1
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message.msg_id] * 3
    assert len({r.body for r in receiver.requests}) == 1
    assert [a.status for a in db.session.scalars(sa.select(WebhookAttempt).order_by(WebhookAttempt.id))] == [
        500, None, 200]


def test_past_the_schedule_a_message_fails(app, ctx, insecure, quick):
    with Receiver(lambda n, r: (503, 0.0)) as receiver:
        _endpoint(receiver.url, webhooks.COMPLAINT)
        outbox.emit(webhooks.COMPLAINT, {})
        db.session.commit()
        [message] = _messages()
        for _ in range(3):
            message.next_attempt_at = utcnow()
            db.session.commit()
            delivery.deliver([message.id])
            db.session.refresh(message)
    assert message.state == WebhookState.FAILED and message.attempts == 3


def test_a_claim_is_taken_once(app, ctx, insecure):
    _endpoint("http://127.0.0.1:9/a", webhooks.COMPLAINT)
    outbox.emit(webhooks.COMPLAINT, {})
    db.session.commit()
    [message] = _messages()
    assert delivery.claim(message.id)
    assert not delivery.claim(message.id)  # a second worker finds it taken
    later = utcnow() + timedelta(seconds=app.config["WEBHOOK_TIMEOUT_SECONDS"]
                                 + app.config["WEBHOOK_CLAIM_SECONDS"] + 1)
    assert delivery.claim(message.id, now=later)  # a killed worker's claim runs out


def test_after_a_failure_the_rest_of_the_task_waits_for_the_sweep(app, ctx, insecure, quick):
    with Receiver(lambda n, r: (500, 0.0)) as receiver:
        _endpoint(receiver.url, webhooks.COMPLAINT)
        for n in range(5):
            outbox.emit(webhooks.COMPLAINT, {"n": n})
        db.session.commit()
        result = delivery.deliver([m.id for m in _messages()])
    assert (result.failed, len(receiver.requests)) == (1, 1)


def test_the_sweep_queues_due_rows_once_per_claim_period(app, ctx, insecure):
    _endpoint("http://127.0.0.1:9/a", webhooks.COMPLAINT)
    outbox.emit(webhooks.COMPLAINT, {})
    db.session.commit()
    [message] = _messages()
    assert delivery.due() == []  # its task was queued with the commit
    message.queued_at = utcnow() - timedelta(seconds=app.config["WEBHOOK_CLAIM_SECONDS"] + 1)
    db.session.commit()
    assert delivery.due() == [(message.endpoint_id, message.id)]  # that task was lost
    assert delivery.due() == []


def test_an_endpoint_failing_for_days_is_disabled_with_a_notice(app, insecure, quick, staff_client):
    with Receiver(lambda n, r: (500, 0.0)) as receiver, app.app_context():
        endpoint = _endpoint(receiver.url, webhooks.COMPLAINT)
        outbox.emit(webhooks.COMPLAINT, {})
        db.session.commit()
        [message] = _messages()
        delivery.deliver([message.id])
        db.session.refresh(endpoint)
        assert endpoint.enabled and endpoint.failing_since is not None
        endpoint.failing_since = utcnow() - timedelta(days=5, seconds=1)
        message.next_attempt_at = utcnow()
        db.session.commit()
        delivery.deliver([message.id])
        db.session.refresh(endpoint)
        assert not endpoint.enabled and "no 2xx answer since" in endpoint.disabled_reason
        assert outbox.emit(webhooks.COMPLAINT, {}) == 0  # nothing more is written for it
        endpoint_id, message_id = endpoint.id, message.id
    for page in ("/staff/", "/staff/webhooks", f"/staff/webhooks/{endpoint_id}"):
        html = staff_client.get(page).get_data(as_text=True)
        assert 'id="webhook-notice"' in html and receiver.url in html
    assert _post(staff_client, f"/staff/webhooks/{endpoint_id}/enable").status_code == 302
    with app.app_context():
        endpoint = db.session.get_one(WebhookEndpoint, endpoint_id)
        message = db.session.get_one(WebhookMessage, message_id)
        assert endpoint.enabled and endpoint.failing_since is None and message.next_attempt_at <= utcnow()
    assert 'id="webhook-notice"' not in staff_client.get("/staff/").get_data(as_text=True)


def test_a_success_ends_the_failing_period(app, ctx, insecure):
    with Receiver() as receiver:
        endpoint = _endpoint(receiver.url, webhooks.COMPLAINT)
        endpoint.failing_since = utcnow() - timedelta(days=1)
        outbox.emit(webhooks.COMPLAINT, {})
        db.session.commit()
        delivery.deliver([m.id for m in _messages()])
    db.session.refresh(endpoint)
    assert endpoint.failing_since is None


# -- CLI ------------------------------------------------------------------------------------


def test_cli_add_list_remove(app, ctx, insecure):
    runner = app.test_cli_runner()
    added = runner.invoke(args=["webhook", "add", "http://127.0.0.1:9/crm", "--event", "complaint",
                                "--event", "signature.created"])
    assert added.exit_code == 0, added.output
    endpoint_id, secret = added.output.split()
    assert secret.startswith("whsec_") and len(Webhook(secret)._whsecret) == 32
    listed = runner.invoke(args=["webhook", "list"])
    assert "http://127.0.0.1:9/crm" in listed.output and "signature.created,complaint" in listed.output
    removed = runner.invoke(args=["webhook", "remove", endpoint_id])
    assert removed.exit_code == 0 and "removed" in removed.output
    assert "127.0.0.1:9/crm" not in runner.invoke(args=["webhook", "list"]).output
    again = runner.invoke(args=["webhook", "remove", endpoint_id])
    assert again.exit_code == 1 and f"no webhook endpoint {endpoint_id}" in again.output


def test_cli_names_a_bad_url_or_event(app, ctx):
    runner = app.test_cli_runner()
    bad_event = runner.invoke(args=["webhook", "add", "https://8.8.8.8/x", "--event", "signup.done"])
    assert bad_event.exit_code == 1 and "unknown event type 'signup.done'" in bad_event.output
    for url, says in [("http://8.8.8.8/x", "https:// URLs only"), ("https://10.0.0.1/x", "private address"),
                      ("https://127.0.0.1/x", "loopback address")]:
        result = runner.invoke(args=["webhook", "add", url, "--event", "complaint"])
        assert result.exit_code == 1 and says in result.output, result.output
        assert "Traceback" not in result.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WebhookEndpoint)) == 0


# -- staff pages (each request in its own app context: no `ctx` here) ----------------------------


def _post(client, path: str, data: dict | None = None):
    """A staff form's POST, with the CSRF token a browser would have from the page."""
    return client.post(path, data={**(data or {}), "csrf_token": csrf_token(client, "/staff/webhooks")})


def test_staff_add_shows_the_secret_once_and_only_posts_change_anything(app, insecure, staff_client):
    page = staff_client.get("/staff/webhooks")
    assert page.status_code == 200 and "No endpoints yet" in page.get_data(as_text=True)
    bad = _post(staff_client, "/staff/webhooks", {"url": "ftp://x", "events": ["complaint"]})
    assert bad.status_code == 400 and "https:// URLs only" in bad.get_data(as_text=True)
    none = _post(staff_client, "/staff/webhooks", {"url": "http://127.0.0.1:9/x"})
    assert none.status_code == 400 and "Choose at least one event" in none.get_data(as_text=True)
    added = _post(staff_client, "/staff/webhooks", {"url": "http://127.0.0.1:9/x",
                                                    "events": ["complaint", "alert.sent"]})
    with app.app_context():
        endpoint = db.session.scalars(sa.select(WebhookEndpoint)).one()
        assert endpoint.events == ["alert.sent", "complaint"] and endpoint.created_by
        endpoint_id, secret = endpoint.id, endpoint.secret
    assert added.status_code == 200 and secret in added.get_data(as_text=True)
    assert secret not in staff_client.get("/staff/webhooks").get_data(as_text=True)
    for path in (f"/staff/webhooks/{endpoint_id}/remove", f"/staff/webhooks/{endpoint_id}/test",
                 f"/staff/webhooks/{endpoint_id}/enable"):
        assert staff_client.get(path).status_code == 405
    with app.app_context():
        assert _messages() == []
    assert _post(staff_client, f"/staff/webhooks/{endpoint_id}/test").status_code == 302
    with app.app_context():
        [message] = _messages()
        assert message.event_type == webhooks.TEST_EVENT
        msg_id = message.msg_id
    page = staff_client.get(f"/staff/webhooks/{endpoint_id}").get_data(as_text=True)
    assert msg_id in page and "not tried yet" in page


def test_staff_redeliver_sends_the_same_webhook_id_again(app, insecure, staff_client):
    with Receiver(lambda n, r: (200, 0.0), body=b'{"thanks": true}') as receiver:
        with app.app_context():
            endpoint_id = _endpoint(receiver.url, webhooks.COMPLAINT).id
            outbox.emit(webhooks.COMPLAINT, {})
            db.session.commit()
            [message] = _messages()
            message_id, msg_id = message.id, message.msg_id
            delivery.deliver([message_id])
        page = staff_client.get(f"/staff/webhooks/{endpoint_id}").get_data(as_text=True)
        assert "<strong>200</strong>" in page and "{&#34;thanks&#34;: true}" in page
        redeliver = f"/staff/webhooks/{endpoint_id}/messages/{message_id}/redeliver"
        assert _post(staff_client, redeliver).status_code == 302
        with app.app_context():
            assert db.session.get_one(WebhookMessage, message_id).state == WebhookState.PENDING
            delivery.deliver([message_id])
    assert [r.headers["webhook-id"] for r in receiver.requests] == [msg_id] * 2
    with app.app_context():
        other = _endpoint("http://127.0.0.1:9/b", webhooks.COMPLAINT).id
    wrong = _post(staff_client, f"/staff/webhooks/{other}/messages/{message_id}/redeliver")
    assert wrong.status_code == 404


def test_staff_remove_stops_sending_and_the_sweep_deletes_it_later(app, insecure, staff_client):
    with app.app_context():
        endpoint_id = _endpoint("http://127.0.0.1:9/a", webhooks.COMPLAINT).id
        outbox.emit(webhooks.COMPLAINT, {})
        db.session.commit()
    assert _post(staff_client, f"/staff/webhooks/{endpoint_id}/remove").status_code == 302
    assert staff_client.get(f"/staff/webhooks/{endpoint_id}").status_code == 404
    with app.app_context():
        [message] = _messages()
        assert message.state == WebhookState.FAILED and message.last_error == "endpoint removed"
        assert endpoints.purge_removed() == 0  # kept an hour, so no event being recorded names a gone row
        assert endpoints.purge_removed(utcnow() + timedelta(hours=2)) == 1
        assert _messages() == []


# -- the queue and the settings ---------------------------------------------------------------


def test_deliveries_have_their_own_queue_that_a_worker_without_q_also_takes(app):
    from alerts import tasknames
    from alerts.celery_app import celery_config, webhooks_queue

    conf = celery_config(app)
    queue = app.config["CELERY_TASK_QUEUE"]
    assert conf["task_routes"][tasknames.DELIVER_WEBHOOKS] == {"queue": webhooks_queue(queue)}
    assert conf["task_routes"][tasknames.SWEEP_WEBHOOKS] == {"queue": webhooks_queue(queue)}
    assert webhooks_queue(queue) in {q.name for q in conf["task_queues"]}  # what `worker` without -Q takes
    assert conf["beat_schedule"]["sweep-webhooks"]["task"] == tasknames.SWEEP_WEBHOOKS


def test_the_retry_schedule_setting_is_read_and_checked(monkeypatch, tmp_path):
    from alerts.config import ConfigError, load_config

    monkeypatch.setenv("SECRET_KEY", "k")
    defaults = load_config(tmp_path)["WEBHOOK_RETRY_SCHEDULE"]
    assert sum(defaults) > 24 * 3600 and len(defaults) == 7  # eight tries over more than a day
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "1, 2,3")
    assert load_config(tmp_path)["WEBHOOK_RETRY_SCHEDULE"] == [1.0, 2.0, 3.0]
    for bad in ("soon", "5,0", ","):
        monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", bad)
        with pytest.raises(ConfigError, match="WEBHOOK_RETRY_SCHEDULE"):
            load_config(tmp_path)


def test_sent_and_failed_messages_are_deleted_after_the_keeping_period(app, ctx, insecure):
    _endpoint("http://127.0.0.1:9/a", webhooks.COMPLAINT)
    for _ in range(3):
        outbox.emit(webhooks.COMPLAINT, {"email": "kept@example.org"})
    db.session.commit()
    sent, failed, pending = _messages()
    sent.state, failed.state = WebhookState.DELIVERED, WebhookState.FAILED
    db.session.add(WebhookAttempt(message_id=sent.id, status=200, latency_ms=1))
    db.session.commit()
    assert delivery.expire() == 0
    later = utcnow() + timedelta(days=app.config["WEBHOOK_KEEP_DAYS"], seconds=1)
    assert delivery.expire(later) == 2
    db.session.commit()
    assert [m.id for m in _messages()] == [pending.id]  # not yet sent: kept
    assert db.session.scalars(sa.select(WebhookAttempt)).all() == []


def test_tls_certificates_are_verified_for_the_hosts_name(tmp_path, insecure):
    """Connecting to the checked address does not skip TLS: a certificate no CA vouches for is refused."""
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    with Receiver() as receiver:
        receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
        url = f"https://localhost:{receiver.server.server_port}/hooks"
        answer = targets.post(url, b"{}", {}, timeout=3, allow_insecure=True)
    assert answer.status is None and "CERTIFICATE_VERIFY_FAILED" in (answer.error or ""), answer
    assert receiver.requests == []


def test_a_signer_import_raises_signature_created_for_each_new_signer_only(app, ctx, insecure):
    """The staff signer import is a signature.created per signer it adds (not for one already
    there), written with the chunk: the CRM hears of paper signatures as of a page's."""
    import io

    from alerts.actions import records
    from alerts.models import Action, Signature
    from tests.helpers import seed_actions

    seed_actions()
    action = db.session.scalar(sa.select(Action).order_by(Action.position))
    _endpoint("http://127.0.0.1:9/a", webhooks.SIGNATURE_CREATED)
    db.session.add(Signature(action_id=action.id, email="old@example.org", email_key="old@example.org",
                             name="Old", source="direct"))
    db.session.commit()
    csv = b"email,name\nold@example.org,Old\nAna@Example.org,Ana Paper\nben@example.org,Ben\n"
    report = records.import_signers(action, io.BytesIO(csv))
    assert (report.added, report.already) == (2, 1)
    sent = [json.loads(m.payload) for m in _messages()]
    assert [(p["type"], p["data"]["email"], p["data"]["source"], p["data"]["confirmed"]) for p in sent] == [
        (webhooks.SIGNATURE_CREATED, "Ana@example.org", "import", True),
        (webhooks.SIGNATURE_CREATED, "ben@example.org", "import", True)]
    ids = set(db.session.scalars(sa.select(Signature.id).where(Signature.email != "old@example.org")))
    assert {p["data"]["id"] for p in sent} == ids
