"""Redis down: the forms and the staff login keep answering, nothing is lost, and what needs the
broker is done once it is back (each email exactly once)."""

from __future__ import annotations

import collections
import re
import time

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import Flask
from limits import parse

from alerts.extensions import Limiter, db
from alerts.models import Action, Signature, SignupAttempt, Subscriber
from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, seed_actions

pytestmark = pytest.mark.slow

PETITION = "detention-is-no-place-for-a-child"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def _form(session: requests.Session, url: str) -> dict[str, str]:
    """The hidden fields of the page's form (its CSRF token first), as a browser would post them."""
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.text[:500]
    return {"csrf_token": TOKEN_RE.search(page.text).group(1), **dict(HIDDEN_RE.findall(page.text))}


def _visitor(n: int) -> requests.Session:
    """A browser of its own, from an address of its own (the web app trusts one proxy hop)."""
    session = requests.Session()
    session.headers["X-Forwarded-For"] = f"198.51.100.{n}"
    return session


def _kind(message) -> str:
    text = message.message.get_body(("plain",)).get_content()
    if "/actions/confirm/" in text:
        return "signature"
    assert "/confirm/" in text, text
    return "list"


def _sweeps(worker) -> int:
    return worker.logfile.read_bytes().count(b"Task alerts.tasks.sweep[")


def test_signups_signatures_and_staff_login_while_redis_is_down(app, ctx, smtp, workers):
    seed_actions()
    db.session.execute(sa.update(Action).where(Action.slug == PETITION).values(requires_confirmation=True))
    create_staff(STAFF_EMAIL, STAFF_PASSWORD)
    db.session.commit()
    worker = workers.start(name="w1")
    web = workers.web(PROXY_FIX_X_FOR="1")
    worker.wait_ready()

    workers.redis.kill()
    health = requests.get(f"{web.url}/healthz", timeout=30)
    assert health.status_code == 503 and "redis" in health.json()

    signups = [f"signup{i}@example.org" for i in range(50)]
    slowest = 0.0
    for i, email in enumerate(signups):
        visitor = _visitor(i)
        form = _form(visitor, f"{web.url}/")
        started = time.monotonic()
        answer = visitor.post(f"{web.url}/subscribe", data={**form, "email": email, "website": ""},
                              allow_redirects=False, timeout=30)
        slowest = max(slowest, time.monotonic() - started)
        assert answer.status_code == 303, answer.text[:500]
        done = visitor.get(f"{web.url}{answer.headers['Location']}", timeout=30)
        assert done.status_code == 200 and email in done.text
    signers = [f"signer{i}@example.org" for i in range(20)]
    joining = set(signers[:5])  # these also ticked "send me action alerts"
    for i, email in enumerate(signers):
        visitor = _visitor(100 + i)
        form = _form(visitor, f"{web.url}/actions/{PETITION}")
        fields = {**form, "name": f"Signer {i}", "email": email, "website": ""}
        if email in joining:
            fields["opt_in"] = "1"
        started = time.monotonic()
        answer = visitor.post(f"{web.url}/actions/{PETITION}/sign", data=fields, allow_redirects=False,
                              timeout=30)
        slowest = max(slowest, time.monotonic() - started)
        assert answer.status_code == 303, answer.text[:500]
        assert answer.headers["Location"].endswith("/thanks?check=1")
    staff = _visitor(200)
    form = _form(staff, f"{web.url}/staff/login")
    login = staff.post(f"{web.url}/staff/login", allow_redirects=False, timeout=30,
                       data={**form, "email": STAFF_EMAIL, "password": STAFF_PASSWORD})
    assert login.status_code == 303, login.text[:500]
    dashboard = staff.get(f"{web.url}{login.headers['Location']}", timeout=30)
    assert dashboard.status_code == 200 and "Log out" in dashboard.text

    # Everything asked for is in the database; nothing could be mailed yet.
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupAttempt)) == 50 + len(joining)
    assert sorted(db.session.scalars(sa.select(Signature.email))) == sorted(signers)
    assert smtp.messages == []
    print(f"\nslowest answer while Redis was down: {slowest * 1000:.0f} ms")

    workers.redis.start()  # the same port: the web app and the worker reconnect by themselves
    back = time.monotonic()
    expected = {(e, "list") for e in [*signups, *joining]} | {(e, "signature") for e in signers}
    deadline = back + 120
    while len(smtp.messages) < len(expected) and time.monotonic() < deadline:
        smtp.handler.wait_for(len(expected), timeout=1)
    finished = time.monotonic() - back
    # Then two more sweeps: none of them sends anything again.
    sweeps = _sweeps(worker)
    deadline = time.monotonic() + 30
    while _sweeps(worker) < sweeps + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _sweeps(worker) >= sweeps + 2, "the sweep did not run again"
    sent = collections.Counter((rcpt, _kind(m)) for m in smtp.messages for rcpt in m.rcpt_tos)
    twice = {k: n for k, n in sent.items() if n > 1}
    assert not twice, f"mailed twice: {sorted(twice)[:5]}"
    assert set(sent) == expected, f"missing: {sorted(expected - set(sent))[:5]}"
    print(f"every confirmation sent {finished:.1f} s after Redis was back")
    db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupAttempt)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)
                             .where(Subscriber.status == "pending")) == 50 + len(joining)
    assert not db.session.scalar(sa.select(sa.func.count()).select_from(Signature)
                                 .where(Signature.confirmation_unqueued))
    assert requests.get(f"{web.url}/healthz", timeout=30).status_code == 200


def test_rate_limits_count_in_memory_while_redis_is_away_and_go_back(own_redis):
    """The decorators' limits and the ones a view counts itself (`Limiter.hit`): the same
    fallback, the limit still holds, and counting returns to Redis once it answers."""
    app = Flask(__name__)
    app.config.update(RATELIMIT_STORAGE_URI=own_redis.url, RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
                      RATELIMIT_KEY_PREFIX="outage", RATELIMIT_STORAGE_OPTIONS={"socket_timeout": 1})
    limiter = Limiter(key_func=lambda: "one-visitor")
    limiter.RECHECK_SECONDS = 0.1
    limiter.init_app(app)
    item = parse("3/minute")

    @app.post("/form")
    @limiter.limit("3/minute")
    def form():
        return "ok"

    @app.post("/counted")
    @limiter.exempt
    def counted():
        return "ok" if limiter.hit(item, "outage", "counted") else ("slow down", 429)

    @app.post("/both")
    @limiter.exempt
    def both():  # two limits in one round trip (`Limiter.hit_all`): the second is the tighter
        breached = limiter.hit_all([(parse("10/minute"), "outage", "both-ip"), (item, "outage", "both-addr")])
        return "ok" if breached is None else (f"slow down {breached}", 429)

    client = app.test_client()
    assert client.post("/form").status_code == client.post("/counted").status_code == 200
    assert client.post("/both").status_code == 200
    own_redis.kill()
    assert [client.post("/form").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [client.post("/counted").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [client.post("/both").get_data(as_text=True) for _ in range(4)] == ["ok"] * 3 + ["slow down 1"]
    own_redis.start()  # empty: whatever it counted before is gone
    keys = redis.Redis.from_url(own_redis.url)
    deadline = time.monotonic() + 10
    while not keys.keys("*counted*") and time.monotonic() < deadline:
        assert client.post("/counted").status_code in (200, 429)
        time.sleep(0.05)
    assert keys.keys("*counted*"), "still counting in memory after Redis was back"
    assert client.post("/form").status_code == 200  # (a fresh count in Redis)
    assert keys.keys("*form*")
    keys.close()
