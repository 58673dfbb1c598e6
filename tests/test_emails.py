"""Every kind of email the service writes to one person keeps the promise its footer makes.

The cases walk the registry (`alerts.subscribers.emails.KINDS`): a kind added later fails
here until it has a case, and a kind written to someone who is not a subscriber says so
when it registers (`subscriber=False`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

import dkim
import pytest
import sqlalchemy as sa

import alerts.tasks  # noqa: F401 - what a worker imports: every kind registered
from alerts.extensions import db
from alerts.models import Action, Signature, Subscriber, utcnow
from alerts.subscribers import emails
from tests.helpers import save_alert, seed_actions
from tests.test_blasts import dkim_key, dns_for  # noqa: F401 - dkim_key is a fixture

STAFF_ADDRESS = "staff-test@example.org"


def _subscriber(email: str, status: str) -> int:
    sub = Subscriber(email=email, status=status, confirm_nonce="n" * 32 if status == "pending" else None,
                     confirmed_at=utcnow() if status == "confirmed" else None)
    db.session.add(sub)
    db.session.commit()
    return sub.id


def _confirmation(n: int) -> tuple[tuple, str]:
    email = f"pending{n}@example.org"
    return (_subscriber(email, "pending"),), email


def _welcome(n: int) -> tuple[tuple, str]:
    email = f"welcome{n}@example.org"
    return (_subscriber(email, "confirmed"),), email


def _signature_confirmation(n: int) -> tuple[tuple, str]:
    email = f"signer{n}@example.org"
    action = db.session.scalars(sa.select(Action).order_by(Action.id)).first()
    signature = Signature(action_id=action.id, email=email, email_key=email, name="Ana", source="direct")
    db.session.add(signature)
    db.session.commit()
    return (signature.id,), email


def _alert_test(n: int) -> tuple[tuple, str]:
    alert = save_alert(None, subject="Act now", intro_md="Read [this](https://example.org/report).")
    return (alert.id, STAFF_ADDRESS), STAFF_ADDRESS


def _staff_invitation(n: int) -> tuple[tuple, str]:
    from alerts import accounts
    from alerts.permissions import Role

    email = f"invited{n}@example.org"
    user = accounts.invite(email, Role.EDITOR, "owner@example.org")
    db.session.commit()
    return (user.id,), email


def _approval_request(n: int) -> tuple[tuple, str]:
    alert = save_alert(None, subject="Act now", intro_md="Read [this](https://example.org/report).",
                       created_by="drafter@example.org")
    return (alert.id, STAFF_ADDRESS, "drafter@example.org"), STAFF_ADDRESS


# One per registered kind: (its arguments, the address it goes to), made afresh for case n.
CASES: dict[str, Callable[[int], tuple[tuple, str]]] = {
    "confirmation": _confirmation,
    "welcome": _welcome,
    "signature_confirmation": _signature_confirmation,
    "alert_test": _alert_test,
    "staff_invitation": _staff_invitation,
    "approval_request": _approval_request,
}


def test_every_registered_kind_has_a_case():
    assert set(emails.KINDS) == set(CASES), "add a case for each kind of email to CASES"


def _send(app, smtp, name: str, n: int):
    """Send one email of the kind for real; the received message, and its subscriber (if any)."""
    with app.app_context():
        args, to = CASES[name](n)
        smtp.handler.clear()
        assert emails.kind(name).send(*args) is True
        subscriber_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == to))
    (received,) = smtp.handler.wait_for(1, timeout=10)
    assert received.rcpt_tos == [to]
    return received, subscriber_id


def _visible_links(msg) -> tuple[str, str]:
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    in_text = re.search(r"Unsubscribe: (\S+)", text)
    in_html = re.search(r'<a href="([^"]+)"[^>]*>Unsubscribe</a>', html)
    assert in_text and in_html, "no visible unsubscribe link"
    return in_text.group(1), in_html.group(1).replace("&amp;", "&")


def _path(url: str) -> str:
    parts = urlsplit(url)
    assert parts.netloc == "alerts.example.org"
    return parts.path


def _status(app, subscriber_id: int) -> str:
    with app.app_context():
        return db.session.get(Subscriber, subscriber_id).status


@pytest.mark.parametrize("name", sorted(emails.KINDS))
def test_each_kind_of_email_unsubscribes_by_its_link_and_by_one_click(name, app, smtp, dkim_key):  # noqa: F811
    """Sent for real and read back: a subscriber's email carries their own unsubscribe link,
    in the footer and in List-Unsubscribe (with RFC 8058's List-Unsubscribe-Post, both signed);
    the link's page and button, and a mail program's one-click POST (no cookie, no CSRF token),
    each leave the reader unsubscribed. An email to someone who is not a subscriber offers no
    one-click unsubscribe, and any sample link it shows answers with a page, not an error."""
    assert name in CASES, f"no case for the email kind {name!r}: add one to CASES"
    with app.app_context():
        seed_actions()
    kind = emails.kind(name)
    received, subscriber_id = _send(app, smtp, name, 1)
    msg = received.message
    assert dkim.verify(received.data, dnsfunc=dns_for(dkim_key))
    if not kind.subscriber:
        assert msg["List-Unsubscribe"] is None and msg["List-Unsubscribe-Post"] is None
        if "Unsubscribe" in msg.get_body(("plain",)).get_content():
            for link in _visible_links(msg):
                page = app.test_client().get(_path(link))
                assert page.status_code == 200 and "sample" in page.get_data(as_text=True)
                one_click = app.test_client(use_cookies=False).post(
                    _path(link), data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded")
                assert one_click.status_code == 200
        return

    assert subscriber_id is not None
    signed_headers = re.search(r"h=([^;]+)", msg["DKIM-Signature"]).group(1).lower().replace(" ", "")
    assert "list-unsubscribe" in signed_headers.split(":")
    assert "list-unsubscribe-post" in signed_headers.split(":")
    header_link = re.match(r"<(https://[^>]+)>", msg["List-Unsubscribe"]).group(1)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert _visible_links(msg) == (header_link, header_link)

    # The visible link: the page, then its button, as a person in a browser.
    browser = app.test_client()
    page = browser.get(_path(header_link))
    assert page.status_code == 200
    action = re.search(r'<form method="post" action="([^"]+)">\s*<button', page.get_data(as_text=True))
    assert action, "no unsubscribe button on the page"
    assert _status(app, subscriber_id) != "unsubscribed"  # looking changes nothing
    done = browser.post(action.group(1))
    assert done.status_code == 200 and "unsubscribed" in done.get_data(as_text=True)
    assert _status(app, subscriber_id) == "unsubscribed"

    # The header's link, as a mail program's one-click button posts it (RFC 8058).
    received, subscriber_id = _send(app, smtp, name, 2)
    header_link = re.match(r"<(https://[^>]+)>", received.message["List-Unsubscribe"]).group(1)
    one_click = app.test_client(use_cookies=False).post(
        _path(header_link), data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 200 and "Location" not in one_click.headers
    assert _status(app, subscriber_id) == "unsubscribed"


@pytest.mark.commits  # the blast's recorder writes on connections of its own
def test_an_alert_unsubscribes_by_its_link_and_by_one_click(app, smtp, dkim_key):  # noqa: F811
    """The blast path writes its messages outside the registry (one message factory for the
    whole blast): the same promise, read back from two recipients' received alerts."""
    from tests.tracking_helpers import send_blast

    with app.app_context():
        smtp.handler.clear()
        send_blast(2, prefix="alerted")
        ids = dict(db.session.execute(sa.select(Subscriber.email, Subscriber.id)).all())
    got = {m.rcpt_tos[0]: m for m in smtp.handler.wait_for(2, timeout=10)}
    by_link, by_click = got["alerted00000@example.org"], got["alerted00001@example.org"]
    for received in (by_link, by_click):
        assert dkim.verify(received.data, dnsfunc=dns_for(dkim_key))
        header_link = re.match(r"<(https://[^>]+)>", received.message["List-Unsubscribe"]).group(1)
        assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert _visible_links(received.message) == (header_link, header_link)

    browser = app.test_client()
    link = _visible_links(by_link.message)[0]
    page = browser.get(_path(link))
    action = re.search(r'<form method="post" action="([^"]+)">\s*<button', page.get_data(as_text=True))
    assert page.status_code == 200 and action, "no unsubscribe button on the alert's unsubscribe page"
    assert _status(app, ids["alerted00000@example.org"]) == "confirmed"  # looking changes nothing
    assert browser.post(action.group(1)).status_code == 200
    assert _status(app, ids["alerted00000@example.org"]) == "unsubscribed"

    header_link = re.match(r"<(https://[^>]+)>", by_click.message["List-Unsubscribe"]).group(1)
    one_click = app.test_client(use_cookies=False).post(
        _path(header_link), data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded")
    assert one_click.status_code == 200
    assert _status(app, ids["alerted00001@example.org"]) == "unsubscribed"


# -- the one retry policy ---------------------------------------------------------------------


@pytest.fixture
def relay_answers(smtp):
    """Make the session's relay answer RCPT with a given reply; restored afterwards."""
    def answer(reply: str | None) -> None:
        smtp.handler.rcpt_reply = (lambda address: reply) if reply else None

    yield answer
    smtp.handler.rcpt_reply = None


def _suppressed(email: str) -> bool:
    from alerts import suppressions

    return suppressions.is_suppressed(email)


@pytest.mark.parametrize("name", sorted(emails.KINDS))
def test_a_permanent_refusal_is_final_and_a_subscribers_is_a_hard_bounce(name, app, ctx, smtp,
                                                                          relay_answers):
    """Every kind's task: a 5xx at RCPT is not retried; for an email to a subscriber it
    suppresses the address (a hard bounce, as for an alert), for anyone else it is only logged."""
    from alerts import tasks

    seed_actions()
    args, to = CASES[name](1)
    relay_answers("550 5.1.1 no such user")
    result = tasks.EMAIL_TASKS[name].apply(args=args)
    assert result.successful() and result.result is False
    assert _suppressed(to) is emails.kind(name).subscriber


def test_a_passing_failure_gives_the_welcome_back_for_the_retry(app, ctx, smtp, relay_answers,
                                                                monkeypatch):
    """A 4xx: the welcome's claim is released before the task gives up or retries, so the
    next try (or the sweep) sends it; once it goes through, it is claimed for good."""
    from alerts import tasks

    monkeypatch.setitem(app.config, "MAIL_MAX_RETRIES", 0)
    (sid,), to = _welcome(1)
    relay_answers("451 4.3.0 try again later")
    result = tasks.send_welcome.apply(args=(sid,))
    assert result.failed()
    db.session.expire_all()
    assert db.session.get(Subscriber, sid).welcomed_for is None
    relay_answers(None)
    smtp.handler.clear()
    assert tasks.send_welcome.apply(args=(sid,)).result is True
    assert smtp.handler.wait_for(1, timeout=10)[0].rcpt_tos == [to]
    assert tasks.send_welcome.apply(args=(sid,)).result is False  # claimed: never twice
    assert not _suppressed(to)
