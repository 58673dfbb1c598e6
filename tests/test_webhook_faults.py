"""Webhooks under faults, with real worker processes, their own Redis and a real receiver: errors,
stalls past the timeout, a worker SIGKILLed mid-delivery and a Redis restart lose nothing; a
stalled receiver does not slow signing down."""

from __future__ import annotations

import collections
import threading
import time

import pytest
import sqlalchemy as sa

from alerts import webhooks
from alerts.celery_app import bulk_queue, webhooks_queue
from alerts.extensions import db
from alerts.models import Action, WebhookMessage, WebhookState
from alerts.webhooks import endpoints, outbox
from tests.helpers import seed_actions
from tests.test_redis_outage import PETITION, _form, _visitor
from tests.webhook_helpers import Receiver, verify

pytestmark = pytest.mark.slow

QUICK = {
    "WEBHOOK_ALLOW_INSECURE": "1",
    "WEBHOOK_TIMEOUT_SECONDS": "1",
    "WEBHOOK_RETRY_SCHEDULE": ",".join(["0.3"] * 3 + ["1"] * 40),
    "WEBHOOK_SWEEP_SECONDS": "0.5",
    "WEBHOOK_CLAIM_SECONDS": "2",
}


def _add_endpoint(app, url: str, *events: str) -> tuple[int, str]:
    app.config["WEBHOOK_ALLOW_INSECURE"] = True
    try:
        endpoint = endpoints.add(url, events, by="test")
        db.session.commit()
    finally:
        app.config["WEBHOOK_ALLOW_INSECURE"] = False
        outbox.forget()
    return endpoint.id, endpoint.secret


def _states() -> collections.Counter:
    db.session.rollback()
    return collections.Counter(db.session.scalars(sa.select(WebhookMessage.state)))


def _wait_all_delivered(total: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _states()[WebhookState.DELIVERED] == total:
            return
        time.sleep(0.1)
    raise AssertionError(f"not all delivered after {timeout} s: {_states()}")


def test_every_event_arrives_signed_through_errors_stalls_a_kill_and_a_redis_restart(app, ctx, workers):
    mode = {"now": "error"}
    held = threading.Event()

    def plan(n, request):
        if mode["now"] == "error":
            return 500, 0.0
        if mode["now"] == "stall":
            return 200, 3.0  # past the 1 s timeout: counted as no answer
        if mode["now"] == "kill" and not held.is_set():
            held.set()
            return 200, 60.0  # held while its worker is killed
        return 200, 0.0

    with Receiver(plan) as receiver:
        endpoint_id, secret = _add_endpoint(app, receiver.url, webhooks.COMPLAINT, webhooks.ALERT_SENT)
        # Written on a connection of the test's: no task is queued, the worker's sweep finds them.
        with db.engine.begin() as conn:
            for n in range(12):
                outbox.emit(webhooks.COMPLAINT if n % 2 else webhooks.ALERT_SENT, {"n": n}, conn=conn)
        msg_ids = set(db.session.scalars(sa.select(WebhookMessage.msg_id)))
        assert len(msg_ids) == 12

        first = workers.start(name="w1", **QUICK)
        receiver.wait_for(lambda got: len(got) >= 15, timeout=60)  # errors, retried
        mode["now"] = "stall"
        seen = len(receiver.requests)
        receiver.wait_for(lambda got: len(got) >= seen + 3, timeout=60)
        mode["now"] = "kill"
        assert held.wait(60), "no request came in the kill phase"
        first.kill()  # SIGKILL mid-delivery: its claimed message must still arrive
        workers.redis.restart()  # and the queue's contents are gone with it
        mode["now"] = "ok"
        second = workers.start(name="w2", **QUICK)
        _wait_all_delivered(12)
        second.stop()

    got = receiver.requests
    by_id = collections.defaultdict(list)
    for request in got:
        payload = verify(secret, request)  # every request's signature verifies
        assert payload["type"] in (webhooks.COMPLAINT, webhooks.ALERT_SENT)
        by_id[request.headers["webhook-id"]].append(request)
    assert set(by_id) == msg_ids  # every event arrived, under its own id, nothing else came
    for msg_id, requests_ in by_id.items():
        assert len({r.body for r in requests_}) == 1, msg_id  # retries: same id, same body
        assert any(r.status == 200 for r in requests_), msg_id
    assert max(len(r) for r in by_id.values()) >= 3  # retried through the errors and stalls
    print(f"\n{len(got)} requests for 12 events; tries per event: "
          f"{sorted(len(r) for r in by_id.values())}")


def _sign_round(web, smtp, first: int, count: int) -> float:
    """Sign `count` times through the web app; per second, until every confirmation email is in."""
    before = len(smtp.messages)
    started = time.monotonic()
    for i in range(first, first + count):
        visitor = _visitor(i)
        form = _form(visitor, f"{web.url}/actions/{PETITION}")
        answer = visitor.post(f"{web.url}/actions/{PETITION}/sign", allow_redirects=False, timeout=30,
                              data={**form, "name": f"Signer {i}", "email": f"signer{i}@example.org",
                                    "website": ""})
        assert answer.status_code == 303, answer.text[:300]
    smtp.handler.wait_for(before + count, timeout=120)
    return count / (time.monotonic() - started)


def test_signing_keeps_its_pace_while_the_receiver_stalls(app, ctx, smtp, workers):
    seed_actions()
    db.session.execute(sa.update(Action).where(Action.slug == PETITION).values(requires_confirmation=True))
    db.session.commit()
    stalled = threading.Event()

    def plan(n, request):
        return (200, 30.0) if stalled.is_set() else (200, 0.0)

    with Receiver(plan) as receiver:
        _endpoint_id, secret = _add_endpoint(app, receiver.url, webhooks.SIGNATURE_CREATED)
        settings = {**QUICK, "WEBHOOK_TIMEOUT_SECONDS": "5"}
        queue = workers.name
        mail = workers.start(name="mail", queues=f"{queue},{bulk_queue(queue)}", **settings)
        hooks = workers.start(name="hooks", beat=False, queues=webhooks_queue(queue), **settings)
        web = workers.web(PROXY_FIX_X_FOR="1", **settings)
        mail.wait_ready()
        hooks.wait_ready()
        _sign_round(web, smtp, 1, 5)  # warm up: imports, connections
        healthy = _sign_round(web, smtp, 10, 40)
        receiver.wait_for(lambda got: len(got) >= 45, timeout=60)
        stalled.set()
        slow = _sign_round(web, smtp, 60, 40)
        assert any(r.status == 0 for r in receiver.requests), "the receiver was not stalled"
        stalled.clear()
        receiver.release.set()
        _wait_all_delivered(85, timeout=120)  # and once it answers again, every signature arrives
    print(f"\nsignatures with their confirmation email: {healthy:.1f}/s with a healthy receiver, "
          f"{slow:.1f}/s with a stalled one (ratio {slow / healthy:.2f})")
    assert slow >= 0.7 * healthy, (healthy, slow)
    signed = {verify(secret, r)["data"]["email"] for r in receiver.requests}
    assert len(signed) == 85  # (and every message is delivered: a 2xx came back for each)
