"""Topics, the pause and the welcome email: what subscribers choose, and that it is respected."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import sqlalchemy as sa

from alerts import audiences
from alerts.extensions import db
from alerts.models import Subscriber, SubscriberTopic, utcnow
from alerts.subscribers import welcome
from tests.helpers import link_in, save_alert, seed_actions, subscribe, unsubscribe_token_for


def _confirmed(app, email: str, topics=()) -> tuple[int, str]:
    with app.app_context():
        sub = Subscriber(email=email, status="confirmed", confirmed_at=utcnow())
        db.session.add(sub)
        db.session.flush()
        for t in topics:
            db.session.add(SubscriberTopic(subscriber_id=sub.id, topic=t))
        db.session.commit()
        return sub.id, f"/unsubscribe/{unsubscribe_token_for(sub.id)}"


def _token_on(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def _audience(app, topics) -> set[str]:
    with app.app_context():
        seed_actions()
        alert = save_alert(None, subject="S", intro_md="x", audience={"topics": topics} if topics else None)
        rules = audiences.parse(alert.audience)
        cond = audiences.conditions(rules, [])
        return set(db.session.scalars(sa.select(Subscriber.email).where(*cond)))


def test_unsubscribe_page_offers_topics_and_pause_before_everything(app, client):
    _, path = _confirmed(app, "t@example.org")
    page = client.get(path).get_data(as_text=True)
    assert page.index("Save my topics") < page.index("Pause for a month") < page.index(
        "Unsubscribe from everything")
    for label in ("Detention", "LGBTQ+ youth", "Mental health"):
        assert label in page


def test_chosen_topics_decide_which_tagged_alerts_arrive(app, client):
    sid, path = _confirmed(app, "t@example.org")
    _confirmed(app, "none@example.org")
    csrf = _token_on(client.get(path).get_data(as_text=True))
    saved = client.post(path + "/topics",
                        data={"topics": ["mental-health", "lgbtq-youth"], "csrf_token": csrf})
    assert saved.status_code == 200 and "LGBTQ+ youth, Mental health" in saved.get_data(as_text=True)
    with app.app_context():
        assert set(db.session.scalars(sa.select(SubscriberTopic.topic))) == {"mental-health", "lgbtq-youth"}
    # Tagged detention: not for t (chose others), for none@ (chose none). Untagged: both.
    assert _audience(app, ["detention"]) == {"none@example.org"}
    assert _audience(app, ["mental-health"]) == {"t@example.org", "none@example.org"}
    assert _audience(app, []) == {"t@example.org", "none@example.org"}
    page = client.get(path).get_data(as_text=True)
    assert 'value="mental-health" checked' in page and 'value="detention">' in page


def test_bad_topic_and_missing_csrf_change_nothing(app, client):
    _, path = _confirmed(app, "t@example.org", topics=["detention"])
    csrf = _token_on(client.get(path).get_data(as_text=True))
    bad = client.post(path + "/topics", data={"topics": ["gardening"], "csrf_token": csrf})
    assert bad.status_code == 400 and "unknown topic gardening" in bad.get_data(as_text=True)
    forged = app.test_client().post(path + "/topics", data={"topics": ["mental-health"]})
    assert forged.status_code == 400
    paused = app.test_client().post(path + "/pause")
    assert paused.status_code == 400
    with app.app_context():
        assert list(db.session.scalars(sa.select(SubscriberTopic.topic))) == ["detention"]
        assert db.session.scalar(sa.select(Subscriber.paused_until)) is None


def test_pause_for_a_month_then_resume(app, client):
    _, path = _confirmed(app, "p@example.org")
    csrf = _token_on(client.get(path).get_data(as_text=True))
    done = client.post(path + "/pause", data={"csrf_token": csrf})
    assert done.status_code == 200 and "No alerts until" in done.get_data(as_text=True)
    with app.app_context():
        until = db.session.scalar(sa.select(Subscriber.paused_until))
        assert timedelta(days=29) < until - utcnow() <= timedelta(days=30)
    assert _audience(app, []) == set()
    page = client.get(path).get_data(as_text=True)
    assert "Alerts are paused until" in page
    client.post(path + "/resume", data={"csrf_token": _token_on(page)})
    assert _audience(app, []) == {"p@example.org"}
    with app.app_context():  # a pause that has run out ends by itself
        db.session.execute(sa.update(Subscriber).values(paused_until=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert _audience(app, []) == {"p@example.org"}


def test_one_click_still_unsubscribes_from_everything(app):
    sid, path = _confirmed(app, "c@example.org", topics=["detention"])
    with app.app_context():
        db.session.execute(sa.update(Subscriber).values(paused_until=utcnow() + timedelta(days=5)))
        db.session.commit()
    bare = app.test_client(use_cookies=False)
    resp = bare.post(path, data="List-Unsubscribe=One-Click",
                     content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 200 and "Location" not in resp.headers
    with app.app_context():
        assert db.session.get(Subscriber, sid).status == "unsubscribed"
    assert _audience(app, []) == set() and _audience(app, ["detention"]) == set()
    # And the preference forms are gone for an unsubscribed address.
    assert "Save my topics" not in app.test_client().get(path).get_data(as_text=True)


def _wait_for_subject(smtp, count: int, subject_part: str, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = [m for m in smtp.handler.messages if subject_part in m.message["Subject"]]
        if len(got) >= count:
            return got
        time.sleep(0.1)
    return [m for m in smtp.handler.messages if subject_part in m.message["Subject"]]


def test_welcome_once_per_confirmation_with_topics_from_the_confirm_page(app, client, smtp, celery_worker):
    with app.app_context():
        seed_actions()
    subscribe(client, "w@example.org")
    confirm = link_in(smtp.handler.wait_for(1, timeout=10)[0], "/confirm/")
    path = confirm.split("example.org", 1)[1]
    assert "Only some topics?" in client.get(path).get_data(as_text=True)
    assert client.post(path, data={"topics": ["detention"]}).status_code == 200
    welcomes = _wait_for_subject(smtp, 1, "Welcome")
    assert len(welcomes) == 1
    msg = welcomes[0].message
    text = msg.get_body(("plain",)).get_content()
    assert "Detention is No Place for a Child" in text and "Sign the Pledge" in text
    assert msg["List-Unsubscribe"].startswith("<https://alerts.example.org/unsubscribe/")
    with app.app_context():
        sid = db.session.scalar(sa.select(Subscriber.id))
        assert list(db.session.scalars(sa.select(SubscriberTopic.topic))) == ["detention"]
        # The same confirmation again (a duplicated or retried task) sends nothing more.
        assert welcome.send_welcome(sid) is False
    client.post(path)  # the used link again: "already", no second welcome
    celery_worker.wait_idle()
    assert len(_wait_for_subject(smtp, 2, "Welcome", timeout=1)) == 1
    # Unsubscribed and back through double opt-in: a new confirmation, a new welcome.
    with app.app_context():
        token = unsubscribe_token_for(sid)
    client.post(f"/unsubscribe/{token}")
    smtp.handler.clear()
    from alerts.extensions import limiter

    with app.app_context():
        db.session.execute(sa.update(Subscriber).values(last_confirmation_at=None))
        db.session.commit()
        limiter.reset()
    subscribe(client, "w@example.org")
    confirm = link_in(smtp.handler.wait_for(1, timeout=10)[0], "/confirm/")
    client.post(confirm.split("example.org", 1)[1])
    assert len(_wait_for_subject(smtp, 1, "Welcome")) == 1


def test_staff_edited_welcome_text_and_switch(app, ctx, smtp):
    seed_actions()
    sub = Subscriber(email="x@example.org", status="confirmed", confirmed_at=utcnow())
    db.session.add(sub)
    welcome.save_text("Glad you're here", "Hello **friend**.", True)
    db.session.commit()
    assert welcome.send_welcome(sub.id) is True
    msg = smtp.handler.wait_for(1, timeout=10)[0].message
    assert msg["Subject"] == "Glad you're here" and "<strong>friend</strong>" in msg.get_body(
        ("html",)).get_content()
    other = Subscriber(email="y@example.org", status="confirmed", confirmed_at=utcnow())
    db.session.add(other)
    welcome.save_text("Glad you're here", "Hello.", False)
    db.session.commit()
    assert welcome.send_welcome(other.id) is False


def test_topics_and_pause_are_in_the_data_download_and_go_with_erasure(app, ctx):
    from tests.helpers import privacy_steps

    sid, _ = _confirmed(app, "e@example.org", topics=["detention", "mental-health"])
    db.session.execute(sa.update(Subscriber).values(paused_until=utcnow() + timedelta(days=3)))
    db.session.commit()
    data = privacy_steps.export_subscriber_data(sid)["subscriber"]
    assert data["topics"] == ["detention", "mental-health"] and data["paused_until"]
    assert privacy_steps.erase_subscriber(sid, by="subscriber")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(SubscriberTopic)) == 0


def test_a_welcome_lost_with_the_broker_is_sent_by_the_sweep_once(app, client, smtp, celery_worker,
                                                                  monkeypatch):
    """The broker is away when the person confirms: the confirmation stands, and once its task
    had its chance (two minutes), the sweep queues the welcome; one welcome, however many sweeps."""
    from datetime import datetime

    from kombu.exceptions import OperationalError

    from alerts import queueing, tasks

    with app.app_context():
        seed_actions()
    subscribe(client, "late@example.org")
    confirm = link_in(smtp.handler.wait_for(1, timeout=10)[0], "/confirm/")

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    monkeypatch.setattr(queueing, "_send", broker_down)
    assert client.post(confirm.split("example.org", 1)[1]).status_code == 200
    queued: list[tuple] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: queued.append((name, tuple(args))))
    with app.app_context():
        sid = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == "late@example.org"))
        assert db.session.get(Subscriber, sid).status == "confirmed"
        assert tasks.sweep.run()["welcomes_queued"] == 0  # its own task may still be on its way
        three_minutes_ago = utcnow() - timedelta(minutes=3)
        db.session.execute(sa.update(Subscriber).values(confirmed_at=three_minutes_ago))
        db.session.commit()
        assert tasks.sweep.run()["welcomes_queued"] == 1
        assert ("alerts.tasks.send_welcome", (sid,)) in queued
        assert welcome.send_welcome(sid) is True
        assert tasks.sweep.run()["welcomes_queued"] == 0  # welcomed: never again
        # Confirmed more than an hour ago (or before welcomes existed): not welcomed late.
        old = Subscriber(email="old@example.org", status="confirmed",
                         confirmed_at=datetime(2026, 1, 1, tzinfo=three_minutes_ago.tzinfo))
        db.session.add(old)
        db.session.commit()
        assert tasks.sweep.run()["welcomes_queued"] == 0
    assert len(_wait_for_subject(smtp, 1, "Welcome")) == 1


def test_no_welcome_is_swept_while_welcomes_are_switched_off(app, ctx):
    db.session.add(Subscriber(email="z@example.org", status="confirmed",
                              confirmed_at=utcnow() - timedelta(minutes=5)))
    welcome.save_text("Hi", "Hello.", False)
    db.session.commit()
    assert welcome.unsent() == []
    welcome.save_text("Hi", "Hello.", True)
    db.session.commit()
    assert len(welcome.unsent()) == 1
