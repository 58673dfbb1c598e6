"""A real HTTP receiver for webhook tests: it records every request and answers as told."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered (0: it stalled and answered nothing in time)
    at: float = field(default_factory=time.monotonic)


# How to answer request number n (from 0): a status, or ("stall", seconds) to hold it first.
Plan = Callable[[int, "Received"], tuple[int, float]]


class Receiver:
    """ThreadingHTTPServer on a loopback port; `plan` decides each answer (default: 200 at once)."""

    def __init__(self, plan: Plan | None = None, body: bytes = b"ok"):
        self.plan: Plan = plan or (lambda n, r: (200, 0.0))
        self.body = body
        self.requests: list[Received] = []
        self.lock = threading.Lock()
        self.in_flight = threading.Event()
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length), 0)
                with receiver.lock:
                    n = len(receiver.requests)
                    receiver.requests.append(got)
                status, hold = receiver.plan(n, got)
                if hold:
                    receiver.in_flight.set()
                    receiver.release.wait(hold)
                got.status = status if not hold else 0
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(receiver.body)))
                    self.end_headers()
                    self.wfile.write(receiver.body)
                except OSError:
                    pass  # the sender gave up waiting

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout: float = 30) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                got = list(self.requests)
            if predicate(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"the receiver did not get what was awaited in {timeout} s: {len(got)} requests")


def verify(secret: str, request: Received) -> dict:
    """What a receiver does: check the signature with the standardwebhooks library, parse the body."""
    return Webhook(secret).verify(request.body, request.headers)


def endpoint_with_deliveries() -> int:
    """Staff pages' data: an endpoint with a delivered, a retried and a failed message, and a
    disabled one (the notice); committed. Returns the first endpoint's id."""
    from datetime import timedelta

    from alerts.extensions import db
    from alerts.models import WebhookAttempt, WebhookMessage, WebhookState, utcnow
    from alerts.webhooks import endpoints, outbox

    hook = endpoints.add("https://8.8.8.8/hooks/alerts", ["signature.created", "complaint"], by="test")
    dead = endpoints.add("https://1.1.1.1/gone", ["alert.sent"], by="test")
    endpoints.disable(dead, "no 2xx answer since 2026-12-01 09:00 UTC (last: answered 503)")
    db.session.flush()
    now = utcnow()
    for n, (state, answers) in enumerate([
        (WebhookState.DELIVERED, [(200, None, '{"ok": true}')]),
        (WebhookState.PENDING, [(500, "answered 500", "Internal Server Error"),
                                (None, "no answer within 10 s", None)]),
        (WebhookState.FAILED, [(410, "answered 410", "Gone")]),
    ]):
        message = WebhookMessage(msg_id=f"msg_test{n}_{hook.id}", endpoint_id=hook.id,
                                 event_type="signature.created",
                                 payload=outbox.body("signature.created", {"id": n}, now),
                                 state=state, attempts=len(answers),
                                 next_attempt_at=now + timedelta(minutes=5))
        db.session.add(message)
        db.session.flush()
        for status, error, response in answers:
            db.session.add(WebhookAttempt(message_id=message.id, at=now, status=status, error=error,
                                          latency_ms=120, response=response))
    db.session.commit()
    outbox.forget()
    return hook.id
