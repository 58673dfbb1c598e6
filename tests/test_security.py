"""Issue 9's attack run, one regression test (or more) per finding, each a step further.

Every test here failed on the code before the fix (see the README's Security section).
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from celery.signals import before_task_publish
from werkzeug.routing.converters import IntegerConverter

from alerts import csvout
from alerts.extensions import db
from alerts.mail import rendering
from alerts.models import StaffUser, Subscriber, SubscriberStatus
from alerts.subscribers import exporting
from tests.helpers import STAFF_EMAIL as EMAIL
from tests.helpers import STAFF_IP as IP
from tests.helpers import STAFF_PASSWORD as PASSWORD
from tests.helpers import (
    apply_signups,
    bounces,
    confirm_token_for,
    create_staff,
    csrf_token,
    post,
    privacy_steps,
    save_alert,
    seed_actions,
    subscribe,
    unsubscribe_token_for,
)
from tests.helpers import log_in as login

ROOT = Path(__file__).resolve().parent.parent
BOUNCE_DOMAIN = "bounces.example.org"


def add(email: str, status: str = SubscriberStatus.CONFIRMED, nonce: str | None = None) -> int:
    sub = Subscriber(email=email, status=status, confirm_nonce=nonce)
    db.session.add(sub)
    db.session.commit()
    return sub.id


def snapshot() -> dict:
    """Every row of every table: what "nothing changed" is checked against."""
    db.session.expire_all()
    out = {}
    for table in db.metadata.sorted_tables:
        rows = db.session.execute(sa.select(table)).all()
        out[table.name] = sorted(repr(tuple(r)) for r in rows)
    db.session.rollback()
    return out


@pytest.fixture(autouse=True)
def _no_login_lockouts(app):
    """Failed logins here leave no lockout behind for the next test."""
    from alerts import redis_conn

    def clear():
        r = redis_conn.client(app.config["REDIS_URL"])
        keys = list(r.scan_iter(match=f"{app.config.get('RATELIMIT_KEY_PREFIX', '')}:staff-login:*"))
        if keys:
            r.delete(*keys)

    clear()
    yield
    clear()


@pytest.fixture
def staff(app):
    with app.app_context():
        create_staff(EMAIL, PASSWORD)
    return EMAIL


# -- 1. HEAD, GET and OPTIONS never change state --------------------------------------------


def test_head_to_confirm_and_unsubscribe_links_changes_nothing(app, ctx, client):
    """Link scanners send HEAD: it must neither confirm nor unsubscribe."""
    pending = add("pending@example.org", SubscriberStatus.PENDING, nonce="n1")
    confirmed = add("confirmed@example.org")
    confirm = f"/confirm/{confirm_token_for(pending, 'n1')}"
    unsub = f"/unsubscribe/{unsubscribe_token_for(confirmed)}"
    before = snapshot()
    for path in (confirm, unsub):
        for method in ("HEAD", "GET", "OPTIONS"):
            resp = client.open(path, method=method)
            assert resp.status_code == 200, (method, path, resp.status_code)
    assert snapshot() == before
    assert db.session.get(Subscriber, pending).status == "pending"
    assert db.session.get(Subscriber, confirmed).status == "confirmed"


def _url_values(app, rule, tokens: dict, ids: dict) -> dict:
    values = {}
    for arg in rule.arguments:
        converter = rule._converters[arg]
        if isinstance(converter, IntegerConverter) or arg.endswith("_id"):  # (token_id: an id)
            values[arg] = ids.get(arg, 1)
        elif "token" in arg:
            values[arg] = tokens["confirm" if rule.endpoint.endswith("confirm") else "unsubscribe"]
        elif arg == "slug":
            values[arg] = ids["slug"]
        elif arg == "filename":
            values[arg] = "staff.js"
        else:
            values[arg] = "x"
    return values


def test_url_map_walk_no_safe_method_changes_anything(app, client, staff):
    """Every route, every safe method, logged in and not: the database is the same after."""
    from alerts import suppressions
    from alerts.models import Action, Suppression

    with app.app_context():
        seed_actions()
        pending = add("walk-pending@example.org", SubscriberStatus.PENDING, nonce="n1")
        confirmed = add("walk@example.org")
        alert = save_alert(None, subject="Walk", intro_md="Hi", preheader="", action_slugs=None)
        suppressions.add("listed@example.org", "manual", "walk")
        db.session.commit()
        ids = {
            "alert_id": alert.id,
            "subscriber_id": confirmed,
            "suppression_id": db.session.scalar(sa.select(Suppression.id)),
            "action_id": db.session.scalar(sa.select(Action.id)),
            "slug": db.session.scalar(sa.select(Action.slug)),
        }
        tokens = {"confirm": confirm_token_for(pending, "n1"),
                  "unsubscribe": unsubscribe_token_for(confirmed)}
    anonymous = app.test_client()
    staff_client = app.test_client()
    assert login(staff_client).status_code == 303
    assert staff_client.get("/staff/").status_code == 200 and anonymous.get("/staff/").status_code == 302
    with app.app_context():
        before = snapshot()
    walked = 0
    for rule in app.url_map.iter_rules():
        path = rule.build(_url_values(app, rule, tokens, ids), append_unknown=False)[1]
        for who in (anonymous, staff_client):
            for method in ("HEAD", "GET", "OPTIONS"):
                resp = who.open(path, method=method)
                assert resp.status_code < 500, (method, path, resp.status_code)
                resp.close()
                walked += 1
    assert walked >= 6 * 20
    with app.app_context():
        after = snapshot()
        # A staff export is the one thing a GET records (@records_on_get): its audit row, once
        # for the staff client's GET (the anonymous one was sent to log in; HEAD records nothing).
        from alerts.models import AuditEvent

        recorded = sorted(db.session.scalars(sa.select(AuditEvent.action)))
        db.session.rollback()
        assert len(after.pop("audit_events")) == len(recorded)
        exported = [action for action in recorded if action != "login"]  # the staff client's login
        before.pop("audit_events")
        assert after == before, "a safe method changed the database"
    recording = [rule.endpoint for rule in app.url_map.iter_rules()
                 if getattr(app.view_functions[rule.endpoint], "records_on_get", False)
                 and rule.endpoint.startswith("staff.")]
    assert len(recording) == 5, recording
    assert exported == ["action.calls_export", "action.signatures_export", "audit.export",
                        "subscriber.data_export",
                        "subscribers.export"]


def test_a_write_during_a_safe_method_is_stopped_app_wide(app, ctx):
    """The guard itself, for routes that do not exist yet: ORM flushes and Core DML alike."""
    from alerts.web.security import SafeMethodWrite

    for method in ("HEAD", "GET", "OPTIONS"):
        with app.test_request_context("/", method=method):
            db.session.add(Subscriber(email=f"{method.lower()}@example.org", status="pending"))
            with pytest.raises(SafeMethodWrite):
                db.session.flush()
            db.session.rollback()
            with pytest.raises(SafeMethodWrite):
                db.session.execute(sa.delete(Subscriber))
            db.session.rollback()
    with app.test_request_context("/", method="POST"):
        db.session.add(Subscriber(email="post@example.org", status="pending"))
        db.session.flush()
        db.session.rollback()


# -- 2. ids never reused; links die with their subscriber -----------------------------------


def test_an_erased_persons_link_never_reaches_the_next_signup(app, ctx, client):
    first = add("first@example.org")
    old_link = unsubscribe_token_for(first)
    privacy_steps.erase_subscriber(first, by="subscriber")
    second = add("second@example.org")
    assert second > first, "an id was reused after erasure"
    for path in (f"/unsubscribe/{old_link}", f"/unsubscribe/{old_link}/data.json",
                 f"/unsubscribe/{old_link}/erase"):
        resp = client.get(path)
        assert "second@example.org" not in resp.get_data(as_text=True), path
    client.post(f"/unsubscribe/{old_link}", data={"List-Unsubscribe": "One-Click"})
    assert db.session.get(Subscriber, second).status == "confirmed"
    # Staff accounts too: a session of a deleted account never becomes the next account's.
    staff_a = create_staff("a@example.org", "a long password 1")
    db.session.commit()
    a_id = staff_a.id
    db.session.delete(staff_a)
    db.session.commit()
    assert create_staff("b@example.org", "a long password 2").id > a_id


def test_tokens_name_no_sequential_id_and_refuse_trailing_junk(app, ctx, client):
    sid = add("junk@example.org", SubscriberStatus.PENDING, nonce="n1")
    unsub, confirm = unsubscribe_token_for(sid), confirm_token_for(sid, "n1")
    payload = json.loads(base64.urlsafe_b64decode(unsub.split(".")[0] + "=="))
    assert not isinstance(payload, int), "the link names the subscriber's sequential id"
    assert payload == db.session.get(Subscriber, sid).token_key
    for bad in (unsub + "=", unsub + "==", unsub[:-1] + chr(ord(unsub[-1]) ^ 1),
                unsub.replace(".", ".."), " " + unsub):
        if bad == unsub:
            continue
        assert client.get(f"/unsubscribe/{bad}").status_code in (400, 404), bad
        assert client.get(f"/unsubscribe/{bad}/data.json").status_code in (400, 404), bad
    # A last character that decodes to the same signature bytes is another spelling: refused.
    sig = unsub.rsplit(".", 1)[1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(sig[-1])
    twins = [alphabet[(index & ~3) | k] for k in range(4) if (index & ~3) | k != index]
    assert all(base64.urlsafe_b64decode(sig[:-1] + c + "=") == base64.urlsafe_b64decode(sig + "=")
               for c in twins)
    for c in twins:
        assert client.get(f"/unsubscribe/{unsub[:-1]}{c}").status_code == 400
    assert client.get(f"/confirm/{confirm}=").status_code == 400
    assert client.post(f"/confirm/{confirm}==").status_code == 400
    assert db.session.get(Subscriber, sid).status == "pending"
    assert client.get(f"/confirm/{confirm}").status_code == 200


# -- 3. one row and one cooldown per case-folded address -----------------------------------


def test_case_variants_share_one_row_and_one_cooldown(app, client, smtp, celery_worker):
    variants = ["Victim@x.org", "vIctim@x.org", "VICTIM@X.ORG", "victim@x.org", "viCTim@X.org",
                "victiM@x.Org", "VIctim@x.org", "vICTIM@x.org", "ViCtIm@x.org", "victIM@x.org"]
    for i, email in enumerate(variants):
        assert subscribe(client, email, ip=f"198.51.100.{30 + i}").status_code == 200
    smtp.handler.wait_for(1, timeout=10)
    celery_worker.wait_idle()  # any further (wrong) confirmation has arrived by now
    assert len(smtp.handler.messages) == 1
    with app.app_context():
        rows = db.session.scalars(sa.select(Subscriber)).all()
        assert [r.email for r in rows] == ["Victim@x.org"]  # kept as first typed, for sending
    # The import and the bounce side key on it too.
    with app.app_context():
        from alerts.subscribers import importing

        report = importing.import_csv(io.StringIO("email\nVICTIM@x.org\nvictim@X.org\n"),
                                      consent="confirm-first")
        db.session.commit()
        assert report.created == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 1


# -- 4. /subscribe takes the same steps whatever the address -------------------------------


@pytest.mark.commits
def test_every_subscribe_branch_takes_the_same_steps(app, client):
    """New, pending, confirmed, unsubscribed, suppressed, erased, in cooldown, a case variant:
    the same SQL statements, the same one push onto the signups' light queue and, from the same
    queue state (empty, no drainer awake), the same one wake-up task, so no clock can tell them
    apart."""
    from alerts import queueing
    from alerts.subscribers.confirmations import SIGNUPS
    from tests.plugins.parts import _InFlight

    with app.app_context():
        add("pending@example.org", SubscriberStatus.PENDING, nonce="n")
        add("confirmed@example.org")
        add("gone@example.org", SubscriberStatus.UNSUBSCRIBED)
        from alerts import suppressions

        suppressions.add("listed@example.org", "manual", "test")
        erased = add("erased@example.org")
        privacy_steps.erase_subscriber(erased, by="subscriber")
        db.session.commit()
    subscribe(client, "cooling@example.org")  # applied: now in its cooldown
    branches = ["brand-new@example.org", "pending@example.org", "confirmed@example.org",
                "gone@example.org", "listed@example.org", "erased@example.org",
                "cooling@example.org", "CONFIRMED@example.org"]
    statements: list[str] = []
    tasks: list[str] = []
    pushes: list[tuple[str, int]] = []
    real_push = queueing.push

    def on_push(name, items, *, wake):
        pushes.extend((name, len(items)) for _ in items)
        return real_push(name, items, wake=wake)

    def on_sql(conn, cursor, statement, parameters, context, executemany):
        if threading.current_thread() is threading.main_thread():  # not a worker's
            statements.append(statement)

    def on_publish(sender=None, **kwargs):
        if threading.current_thread() is threading.main_thread():  # not a worker's own tasks
            tasks.append(sender)

    steps = {}
    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", on_sql)
    before_task_publish.connect(on_publish)
    queueing.push = on_push  # (the after-commit hook looks it up in the module at each commit)
    try:
        for i, email in enumerate(branches):
            token = csrf_token(client)
            # Every branch from the same queue state: the session's worker (if an earlier test
            # started it) done with the last branch's drain, the list empty, no drainer awake.
            assert _InFlight.settle(app)
            with app.app_context():
                queueing.clear(SIGNUPS)
            statements.clear()
            tasks.clear()
            pushes.clear()
            resp = client.post("/subscribe", data={"email": email, "website": "", "csrf_token": token},
                               environ_base={"REMOTE_ADDR": f"198.51.100.{60 + i}"})
            assert resp.status_code == 303  # to the answer page, the same for every branch
            steps[email] = (tuple(statements), tuple(tasks), tuple(pushes))
    finally:
        queueing.push = real_push
        sa.event.remove(engine, "before_cursor_execute", on_sql)
        before_task_publish.disconnect(on_publish)
    first = steps[branches[0]]
    for email, taken in steps.items():
        assert taken == first, f"{email} took other steps: {taken} vs {first}"
    assert first[1] == ("alerts.tasks.drain_signups",)
    assert first[2] == ((SIGNUPS, 1),)
    assert any("signup_attempts" in s for s in first[0])
    # And the task then decides as before (here, or a running worker: once either way): a
    # row for the new address, none for the suppressed or erased ones.
    from alerts.models import SignupAttempt

    with app.app_context():
        apply_signups()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupAttempt)) == 0
        new = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "brand-new@example.org"))
        assert new.status == "pending"
        for gone_key in ("listed@example.org", "erased@example.org"):
            assert db.session.scalar(sa.select(Subscriber).where(Subscriber.email_key == gone_key)) is None
        gone = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "gone@example.org"))
        assert gone.status == "unsubscribed"  # (12) unchanged until its owner confirms


@pytest.mark.commits
def test_a_signup_whose_task_was_lost_is_applied_by_the_sweep(app, client, monkeypatch):
    from kombu.exceptions import OperationalError

    from alerts import queueing, tasks
    from alerts.models import SignupAttempt

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(queueing, "_send", broker_down)
    assert subscribe(client, "lost@example.org", apply=False).status_code == 200
    with app.app_context():
        from datetime import timedelta

        from alerts.models import utcnow

        db.session.execute(sa.update(SignupAttempt).values(at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
        tasks.sweep()
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "lost@example.org"))
        assert sub is not None and sub.status == "pending"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(SignupAttempt)) == 0


# -- 5. staff sessions are revoked on the server ----------------------------------------------


def _copy_session(app, source) -> object:
    thief = app.test_client()
    cookie = source.get_cookie("session")
    thief.set_cookie("session", cookie.value, domain=cookie.domain, path=cookie.path)
    return thief


def test_logout_password_change_and_lockout_end_copied_sessions(app, client, staff):
    assert login(client).status_code == 303
    thief = _copy_session(app, client)
    assert thief.get("/staff/").status_code == 200
    assert post(client, "/staff/logout").status_code == 303
    assert thief.get("/staff/").status_code == 302  # the copied cookie is dead
    assert thief.post("/staff/logout").status_code in (400, 401)

    assert login(client).status_code == 303
    thief = _copy_session(app, client)
    with app.app_context():
        from alerts.accounts import set_password

        set_password(db.session.scalar(sa.select(StaffUser)), "a brand new password")
        db.session.commit()
    assert thief.get("/staff/").status_code == 302
    assert client.get("/staff/").status_code == 302

    assert login(client, password="a brand new password").status_code == 303
    thief = _copy_session(app, client)
    attacker = app.test_client()
    for _ in range(app.config["STAFF_LOCKOUT_FAILURES"]):
        login(attacker, password="wrong password!", ip="192.0.2.66")
    assert thief.get("/staff/").status_code == 302


def test_lockout_is_per_account_and_ip(app, client, staff):
    """Failing on purpose from one address does not lock the staff member out elsewhere."""
    attacker = app.test_client()
    for _ in range(app.config["STAFF_LOCKOUT_FAILURES"]):
        login(attacker, password="wrong password!", ip="192.0.2.77")
    locked = login(attacker, ip="192.0.2.77")
    assert locked.status_code == 429 and "locked" in locked.get_data(as_text=True)
    assert login(client, ip=IP).status_code == 303


# -- 6. every CSV cell neutralised -------------------------------------------------------------


@pytest.mark.parametrize("value", ["=HYPERLINK(\"http://evil\",\"x\")", "=cmd|' /C calc'!A0", "+1+1",
                                   "-1+1", "@SUM(1)", "\t=1", "\r=1", " =1+1", "\n=1+1", "\u3000@x",
                                   "\uff1dSUM(1)", "\uff0b1"])
def test_csv_cells_are_neutralised(value):
    assert csvout.cell(value) == "'" + value


def test_exports_neutralise_email_and_source_cells(app, client, staff):
    import csv

    with app.app_context():
        db.session.add(Subscriber(email="=cmd|'/c calc'!A0@example.org", status="confirmed",
                                  source=" =HYPERLINK(\"http://evil.example\",\"click\")"))
        db.session.add(Subscriber(email="plain@example.org", status="confirmed", source="\uff1d1+1"))
        db.session.commit()
        rows = list(csv.reader(io.StringIO("".join(exporting.export_csv()))))
    for row in rows[1:]:
        for value in row:
            assert value.startswith("'") or csvout.cell(value) == value, value
    assert login(client).status_code == 303
    web = client.get("/staff/subscribers/export.csv").get_data(as_text=True)
    assert "'=cmd" in web and "' =HYPERLINK" in web and "'\uff1d1+1" in web
    with app.app_context():
        cli = app.test_cli_runner().invoke(args=["subscribers", "export"])
    assert "'=cmd" in cli.output and "' =HYPERLINK" in cli.output


def test_every_csv_written_goes_through_csvout():
    """No module writes CSV but alerts/csvout.py (so a new export cannot forget the rule)."""
    offenders = []
    for path in (ROOT / "alerts").rglob("*.py"):
        if path.name == "csvout.py":
            continue
        if re.search(r"csv\.(writer|DictWriter)\(", path.read_text()):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# -- 9 and 13. bounces: only signed ids; the List-Unsubscribe mailto ---------------------------


@pytest.fixture
def bounce_domain(app, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", BOUNCE_DOMAIN)


def _smtp_to(server, rcpt: str, data: bytes) -> None:
    import smtplib

    with smtplib.SMTP(server.host, server.port, timeout=10) as conn:
        conn.sendmail("reader@example.net", [rcpt], data)


@pytest.mark.commits
def test_list_unsubscribe_mailto_is_signed_on_the_bounce_domain_and_acted_on(app, ctx, bounce_domain):
    from alerts.bounces.server import BounceServer
    from alerts.mail.signed_ids import unsubscribe_address
    from tests.helpers import make_alert

    alert_id = make_alert()
    sid = add("reader@example.net")
    other = add("bystander@example.net")
    key = db.session.get(Subscriber, sid).token_key
    from alerts.blasts.content import MessageFactory
    from alerts.models import Alert

    factory = MessageFactory.for_alert(db.session.get(Alert, alert_id))
    header = dict(factory.fields(1, sid, "reader@example.net", token_key=key)["extra_headers"])
    header = header["List-Unsubscribe"]
    mailto = re.search(r"<mailto:([^?>]+)", header).group(1)
    assert mailto == unsubscribe_address(key) and mailto.endswith("@" + BOUNCE_DOMAIN)
    assert mailto.split("@")[1] == BOUNCE_DOMAIN  # not the MAIL_FROM domain, which nobody reads
    assert not re.search(rf"\b{sid}\b", mailto.split("@")[0].replace(key, ""))
    test_send = dict(factory.fields(None, None, "staff@example.org")["extra_headers"])
    assert "mailto:" not in test_send["List-Unsubscribe"]

    server = BounceServer(app, "127.0.0.1").start()
    try:
        body = b"Subject: unsubscribe\r\nFrom: reader@example.net\r\n\r\nunsubscribe\r\n"
        # Forged: another subscriber's key with a made-up tag, and a tampered tag.
        other_key = db.session.get(Subscriber, other).token_key
        _smtp_to(server, f"unsubscribe+{other_key}-0123456789abcdef@{BOUNCE_DOMAIN}", body)
        last = mailto[-len(BOUNCE_DOMAIN) - 2]  # the tag's last character, changed for sure
        _smtp_to(server, mailto[:-len(BOUNCE_DOMAIN) - 2] + ("1" if last == "0" else "0") + "@"
                 + BOUNCE_DOMAIN, body)
        db.session.expire_all()
        assert db.session.get(Subscriber, other).status == "confirmed"
        assert db.session.get(Subscriber, sid).status == "confirmed"
        _smtp_to(server, mailto.upper(), body)  # some MTAs fold case: still ours
        db.session.expire_all()
        assert db.session.get(Subscriber, sid).status == "unsubscribed"
        assert db.session.get(Subscriber, other).status == "confirmed"
    finally:
        server.stop()


def test_without_a_bounce_domain_no_mailto_is_advertised(app, ctx):
    from alerts.blasts.content import MessageFactory
    from alerts.models import Alert
    from tests.helpers import make_alert

    alert_id = make_alert()
    sid = add("reader@example.net")
    key = db.session.get(Subscriber, sid).token_key
    factory = MessageFactory.for_alert(db.session.get(Alert, alert_id))
    header = dict(factory.fields(1, sid, "reader@example.net", token_key=key)["extra_headers"])
    assert header["List-Unsubscribe"].startswith("<https://") and "mailto:" not in header["List-Unsubscribe"]


def test_a_forged_report_naming_an_address_changes_no_one_on_any_path(app, ctx, bounce_domain):
    sid = add("target@example.net")
    arf = (
        b"From: feedback@isp.example\r\nTo: abuse@example.org\r\nSubject: complaint\r\n"
        b"Message-ID: <forged-arf@isp.example>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n"
        b"--b\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        b"Version: 1\r\nOriginal-Rcpt-To: target@example.net\r\n\r\n"
        b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nTo: target@example.net\r\n"
        b"From: alerts@example.org\r\nSubject: Act now\r\n\r\n--b--\r\n"
    )
    for source in ("imap", "smtp"):
        bounces.process(arf, source=source)
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).status == "confirmed"
    from alerts.suppressions import is_suppressed

    assert not is_suppressed("target@example.net")


# -- 10. request size -------------------------------------------------------------------------


def multipart(fields: dict, files: dict) -> dict:
    """A multipart body encoded here (the test client spools big ones to a temp file it leaks)."""
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--B\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (content, filename) in files.items():
        out.write(f'--B\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: text/csv\r\n\r\n".encode() + content + b"\r\n")
    out.write(b"--B--\r\n")
    return {"data": out.getvalue(), "content_type": "multipart/form-data; boundary=B"}


def test_large_bodies_get_a_readable_413_everywhere_but_the_staff_import(app, client, staff, monkeypatch):
    big = "x" * (1024 * 1024 + 1)
    with app.app_context():
        sid = add("size@example.org")
        unsub = unsubscribe_token_for(sid)
    cases = [
        ("/subscribe", {"data": {"email": "a@example.org", "website": big}}),
        (f"/unsubscribe/{unsub}", {"data": {"List-Unsubscribe": "One-Click", "pad": big}}),
        (f"/unsubscribe/{unsub}", multipart({"List-Unsubscribe": "One-Click"}, {"f": (big.encode(), "a")})),
        (f"/unsubscribe/{unsub}", {"data": big.encode(), "content_type": "application/json"}),
        ("/staff/login", {"data": {"email": big}}),
        ("/staff/subscribers/import", multipart({}, {"file": (big.encode(), "a.csv")})),  # no session
    ]
    for path, kwargs in cases:
        resp = client.post(path, **kwargs)
        page = resp.get_data(as_text=True)
        assert resp.status_code == 413, (path, resp.status_code)
        assert "at most 1\u00a0MB" in page and "Too large to accept" in page, path
        assert "<html" in page.lower(), path
    with app.app_context():
        assert db.session.get(Subscriber, sid).status == "confirmed"
    # Staff, logged in, may upload a larger CSV to the import page (and only there). Past a
    # smaller limit here, so the file that passes it is a sixth as long to check.
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 160 * 1024)
    assert login(client).status_code == 303
    rows = "".join(f"person{i:06d}@example.org\n" for i in range(7_000))
    assert len(rows) > app.config["MAX_CONTENT_LENGTH"]
    fields = {"csrf_token": csrf_token(client, "/staff/subscribers/import"), "consent": "confirm-first",
              "dry_run": "y"}
    resp = client.post("/staff/subscribers/import",
                       **multipart(fields, {"file": (("email\n" + rows).encode(), "big.csv")}))
    assert resp.status_code == 200, resp.status_code
    big_form = {"csrf_token": csrf_token(client, "/staff/alerts/new"), "subject": "s", "intro_md": big}
    assert client.post("/staff/alerts/new", data=big_form).status_code == 413


# -- 11. the compose file ------------------------------------------------------------------------


def test_compose_publishes_web_on_loopback_only():
    text = (ROOT / "docker-compose.yml").read_text()
    published = {}
    service = None
    in_ports = False
    for line in text.splitlines():
        if m := re.match(r"^  (\w[\w-]*):\s*$", line):
            service, in_ports = m.group(1), False
        elif re.match(r"^    ports:\s*$", line):
            in_ports = True
        elif in_ports and (m := re.match(r'^      - "?([^"]+)"?\s*$', line)):
            published.setdefault(service, []).append(m.group(1))
        elif not line.startswith("      "):
            in_ports = False
    assert published["web"] == ["127.0.0.1:${WEB_PORT:-8000}:8000"]
    for name, ports in published.items():
        if name != "bounces":  # the MX: SMTP on port 25 is public by design
            assert all(p.startswith("127.0.0.1:") for p in ports), (name, ports)
    readme = (ROOT / "README.md").read_text()
    assert "127.0.0.1" in readme and "X-Forwarded-For" in readme


# -- 12. the low ones ------------------------------------------------------------------------


def test_security_headers_on_public_and_token_pages(app, ctx, client, monkeypatch):
    sid = add("headers@example.org", SubscriberStatus.PENDING, nonce="n1")
    page = client.get("/")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")  # BASE_URL is https
    token_pages = [f"/confirm/{confirm_token_for(sid, 'n1')}", f"/unsubscribe/{unsubscribe_token_for(sid)}",
                   f"/unsubscribe/{unsubscribe_token_for(sid)}/erase", "/confirm/forged.token.x",
                   "/unsubscribe/forged.x/data.json"]
    for path in token_pages:
        resp = client.get(path)
        assert resp.headers["Cache-Control"] == "no-store", path
        assert resp.headers["Referrer-Policy"] == "no-referrer", path
        assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path
    for path in ("/healthz", "/nope", "/static/staff.js"):
        with client.get(path) as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff", path
    monkeypatch.setitem(app.config, "BASE_URL", "http://127.0.0.1:5000")
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_session_cookie_is_secure_when_base_url_is_https(app, client, staff):
    assert app.config["SESSION_COOKIE_SECURE"] is True
    resp = login(client)
    assert "Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]


def _subscriber_count(app) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber))


def test_a_whole_file_is_checked_before_any_row_is_applied(app, client, staff):
    rows = "".join(f"row{i:05d}@example.org,ok\n" for i in range(2500))
    data = "email,source\n" + rows + 'late@example.org,"' + "x" * 140_000 + '"\n'
    from alerts.subscribers import importing

    with app.app_context(), pytest.raises(importing.ImportFileError, match="line 2502"):
        importing.import_file(io.BytesIO(data.encode()), consent="documented", source="paper")
    assert _subscriber_count(app) == 0
    assert login(client).status_code == 303
    form = {"csrf_token": csrf_token(client, "/staff/subscribers/import"), "consent": "documented",
            "source": "paper"}
    resp = client.post("/staff/subscribers/import", **multipart(form, {"file": (data.encode(), "big.csv")}))
    assert resp.status_code == 400 and "line 2502" in resp.get_data(as_text=True)
    assert _subscriber_count(app) == 0
    # The CLI the same way, with an unclosed quote.
    path = Path(app.instance_path) / "bad-import.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("email\na@example.org\n\"b@example.org\n" + "y" * 200_000)
    out = app.test_cli_runner().invoke(args=["subscribers", "import", str(path), "--consent",
                                             "documented", "--source", "paper"])
    path.unlink()
    assert out.exit_code != 0 and "nothing was imported" in out.output
    assert _subscriber_count(app) == 0


def test_huge_ids_and_pages_are_404_or_clamped_not_500(app, client, staff):
    assert login(client).status_code == 303
    huge = 2**63
    for path in (f"/staff/subscribers/{2**31}", f"/staff/alerts/{2**31}",  # past the int4 id columns
                 f"/staff/subscribers/{huge}", f"/staff/alerts/{huge}", f"/staff/subscribers/{huge}/erase",
                 f"/staff/alerts/{huge}/preview.html", f"/staff/subscribers/{huge * 10**6}"):
        assert client.get(path).status_code == 404, path
    for path in ("/staff/subscribers", "/staff/alerts", "/staff/suppressions"):
        for page in (huge, -huge, 10**30, "nan"):
            assert client.get(f"{path}?page={page}").status_code == 200, (path, page)


def test_staff_text_can_never_collide_with_the_slot_marker(app, client, smtp, staff):
    """Old markers, today's shape with other names: subject, preheader and intro stay text."""
    typed = "XSLOTXemailXSLOTX XSLOTXnopeXSLOTX XSLOTXunsubscribe_urlXSLOTX XSLOTXaction_0XSLOTX"
    with app.app_context():
        seed_actions()
        alert_id = save_alert(None, subject="Hi " + typed, intro_md="Intro " + typed,
                              preheader="Pre " + typed, action_slugs=None).id
    assert login(client).status_code == 303
    html = client.get(f"/staff/alerts/{alert_id}/preview.html")
    text = client.get(f"/staff/alerts/{alert_id}/preview.txt")
    assert html.status_code == 200 and text.status_code == 200
    assert typed in text.get_data(as_text=True) and "subscriber@example.org" not in "".join(
        line for line in text.get_data(as_text=True).splitlines() if "XSLOTX" in line)
    assert typed in html.get_data(as_text=True)
    resp = post(client, f"/staff/alerts/{alert_id}/test", {"to": EMAIL}, page=f"/staff/alerts/{alert_id}")
    assert resp.status_code == 303
    got = smtp.handler.wait_for(1, timeout=10)[0].message
    assert typed in got["Subject"] and typed in got.get_body(("plain",)).get_content()
    assert rendering._MARK not in got.as_string()


def test_tokens_never_reach_the_dev_servers_request_log(app, ctx, live_server, caplog):
    import contextlib
    import logging
    import urllib.error
    import urllib.request

    sid = add("log@example.org", SubscriberStatus.PENDING, nonce="n1")
    confirm, unsub = confirm_token_for(sid, "n1"), unsubscribe_token_for(sid)
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        for path in (f"/confirm/{confirm}", f"/unsubscribe/{unsub}", f"/unsubscribe/{unsub}/data.json",
                     f"/r/{unsub}"):
            req = urllib.request.Request(live_server.url + path, headers={"Referer": live_server.url + path})
            with contextlib.suppress(urllib.error.HTTPError):
                urllib.request.urlopen(req, timeout=10).read()
    logged = caplog.text
    assert "/confirm/[redacted]" in logged and "/unsubscribe/[redacted]/data.json" in logged
    for token in (confirm, unsub, confirm.split(".")[0], unsub.split(".")[0]):
        assert token not in logged


@pytest.mark.slow
def test_tokens_never_reach_gunicorns_access_log(app, tmp_path):
    """The production server, with the repo's gunicorn.conf.py: request line and Referer."""
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from alerts.mail.smtp import free_port

    with app.app_context():
        sid = add("gunicorn@example.org")
        unsub = unsubscribe_token_for(sid)
    port = free_port("127.0.0.1")
    log_file = tmp_path / "access.log"
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               REDIS_URL=app.config["REDIS_URL"], SECRET_KEY="test-key-1", BASE_URL="https://alerts.example.org")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
                             "1", "--access-logfile", str(log_file), "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("gunicorn did not start")
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/unsubscribe/{unsub}"
        urllib.request.urlopen(urllib.request.Request(url, headers={"Referer": url}), timeout=10).read()
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    logged = log_file.read_text()
    assert "/unsubscribe/[redacted]" in logged
    assert unsub not in logged and unsub.split(".")[0] not in logged


def test_test_sends_go_to_one_unsuppressed_address_only(app, client, smtp, staff):
    from alerts import suppressions

    with app.app_context():
        seed_actions()
        alert_id = save_alert(None, subject="Test", intro_md="Hi", preheader="", action_slugs=None).id
        suppressions.add("victim@example.net", "complaint", "test")
        db.session.commit()
    assert login(client).status_code == 303
    page = f"/staff/alerts/{alert_id}"
    for to in ("Victim@Example.net", "me@example.org,victim@example.net", "victim@example.net,me",
               "me,victim@example.net", "victim@example.net\r\nBcc: x@example.org", "victim@example.net "):
        post(client, f"/staff/alerts/{alert_id}/test", {"to": to}, page=page)
    # A test send is made in the request: whatever it sent had arrived when the page answered.
    assert [r for m in smtp.handler.messages for r in m.rcpt_tos] == []


def test_dev_files_are_private(tmp_path):
    import os
    import stat

    from alerts.cli.dev import private_files
    from alerts.config import _dev_secret_key

    old = os.umask(0o022)
    try:
        private_files(tmp_path / "instance")
        (tmp_path / "instance" / "alerts.db").write_text("x")
        key_dir = tmp_path / "keys"
        _dev_secret_key(key_dir)
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "instance") == 0o700
    assert mode(tmp_path / "instance" / "alerts.db") == 0o600
    assert mode(key_dir) == 0o700 and mode(key_dir / "secret_key") == 0o600


def test_links_in_emails_sent_before_token_keys_still_unsubscribe_and_nothing_more(app, ctx, client):
    """Unsubscribe links must keep working (CAN-SPAM: 30 days at least; ours never expire):
    an old signed-id link unsubscribes a subscriber who was on the list then, but shows no
    address, opens no data page, and is nothing for anyone who signed up since."""
    from itsdangerous import URLSafeSerializer

    from alerts.subscribers.tokens import LEGACY_UNSUBSCRIBE_SALT

    def old_link(subscriber_id: int) -> str:
        return URLSafeSerializer(["test-key-1"], salt=LEGACY_UNSUBSCRIBE_SALT).dumps(subscriber_id)

    veteran = add("veteran@example.org")
    db.session.execute(sa.update(Subscriber).where(Subscriber.id == veteran).values(legacy_links=True))
    db.session.commit()
    newcomer = add("newcomer@example.org")
    page = client.get(f"/unsubscribe/{old_link(veteran)}")
    assert page.status_code == 200 and "veteran@example.org" not in page.get_data(as_text=True)
    assert "data.json" not in page.get_data(as_text=True)
    assert client.get(f"/unsubscribe/{old_link(veteran)}/data.json").status_code == 400
    assert client.get(f"/unsubscribe/{old_link(veteran)}/erase").status_code == 400
    assert client.head(f"/unsubscribe/{old_link(veteran)}").status_code == 200
    db.session.expire_all()
    assert db.session.get(Subscriber, veteran).status == "confirmed"
    done = client.post(f"/unsubscribe/{old_link(veteran)}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert client.post(f"/unsubscribe/{old_link(newcomer)}").status_code == 400
    assert client.post(f"/unsubscribe/{old_link(veteran)}=").status_code == 400
    db.session.expire_all()
    assert db.session.get(Subscriber, veteran).status == "unsubscribed"
    assert db.session.get(Subscriber, newcomer).status == "confirmed"
