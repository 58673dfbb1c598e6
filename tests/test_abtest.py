"""A/B subject tests and the per-recipient thanks for partial signers, through the real send path."""

from __future__ import annotations

import collections
import json
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from alerts.blasts import abtest
from alerts.extensions import db
from alerts.models import AbTest, Action, Click, ConsentRecord, Delivery, Signature, Subscriber, utcnow
from tests.helpers import add_confirmed, blasts, make_alert, wait_for_state

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
DETENTION = "detention-is-no-place-for-a-child"


def _send_all_queued(alert_id: int) -> None:
    """What the dispatch task and its batch tasks do, in-process."""
    for first, last in list(blasts.batch_ranges(alert_id, 500)):
        blasts.send_batch(alert_id, first, last)


def _ab_alert(n: int, seed: int, **kw) -> int:
    add_confirmed(n)
    alert_id = make_alert(subject="Subject A")
    from alerts.models import Alert

    alert = db.session.get(Alert, alert_id)
    abtest.configure(alert, subjects=["Subject A", "Subject B", "Subject C"],
                     from_names=["Kids Rights", "Maria at Kids Rights"], sample_pct=10,
                     wait_minutes=60, seed=seed, **kw)
    db.session.commit()
    blasts.launch(alert_id)  # fixes recipients and picks the samples in one transaction
    return alert_id


def _by_variant(alert_id: int) -> dict:
    rows = db.session.execute(sa.select(Delivery.variant, Delivery.status, sa.func.count())
                              .where(Delivery.alert_id == alert_id)
                              .group_by(Delivery.variant, Delivery.status)).all()
    return {(v, s): n for v, s, n in rows}


@pytest.mark.commits
def test_ab_samples_winner_by_clicks_rest_sent_once(app, ctx, smtp):
    alert_id = _ab_alert(300, seed=7)
    # 10% of 300 per variant: 30 each queued; the other 210 held with no variant.
    assert _by_variant(alert_id) == {(0, "queued"): 30, (1, "queued"): 30, (2, "queued"): 30,
                                     (None, "held"): 210}
    first = db.session.scalars(sa.select(Delivery.id).where(Delivery.alert_id == alert_id,
                                                            Delivery.variant == 1)).all()
    _send_all_queued(alert_id)
    msgs = smtp.handler.wait_for(90, timeout=10)
    subjects = collections.Counter(m.message["Subject"] for m in msgs)
    assert subjects == {"Subject A": 30, "Subject B": 30, "Subject C": 30}
    froms = {m.message["Subject"]: m.message["From"].addresses[0] for m in msgs}
    assert (froms["Subject A"].display_name, froms["Subject A"].addr_spec) == ("Kids Rights",
                                                                               "alerts@example.org")
    assert froms["Subject B"].display_name == "Maria at Kids Rights"
    assert froms["Subject C"].display_name == "Action Alerts"  # no name given: MAIL_FROM's
    assert blasts.status(alert_id)["state"] == "sending"  # the rest is held, so not finished
    # Clicks: C gets 6 people clicking, B 4 (one of B's also a machine click, which counts for nothing).
    rows = {v: db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id)
                                  .where(Delivery.alert_id == alert_id, Delivery.variant == v)).all()
            for v in (1, 2)}
    for d, s in rows[2][:6]:
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
    for d, s in rows[1][:4]:
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))  # twice: one person
    db.session.add(Click(alert_id=alert_id, delivery_id=rows[1][5][0], machine=True))
    db.session.commit()
    assert abtest.decide(alert_id) is None  # the wait is not over
    db.session.commit()
    db.session.execute(sa.update(AbTest).values(decide_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert abtest.decide_due() == {alert_id: "decided"}
    test = db.session.get(AbTest, alert_id)
    assert test.winner == 2
    assert test.reason.startswith("Variant C won on clicks: 6 of 30 clicked (20.0%) against "
                                  "A's 0 of 30 clicked (0.0%), B's 4 of 30 clicked (13.3%)")
    _send_all_queued(alert_id)
    msgs = smtp.handler.wait_for(300, timeout=10)
    per = collections.Counter(r for m in msgs for r in m.rcpt_tos)
    assert len(per) == 300 and set(per.values()) == {1}  # everyone once: nobody got two variants
    assert collections.Counter(m.message["Subject"] for m in msgs)["Subject C"] == 240
    assert blasts.status(alert_id)["state"] == "sent"
    assert set(first) <= set(db.session.scalars(sa.select(Delivery.id).where(Delivery.variant == 1)))
    report = json.loads(app.test_cli_runner().invoke(args=["alert", "ab", str(alert_id), "--json"]).stdout)
    assert (report["state"], report["winner"]) == ("decided", "C")
    assert [(v["variant"], v["sent"], v["clickers"]) for v in report["variants"]] == [
        ("A", 30, 0), ("B", 30, 4), ("C", 30, 6)]
    assert report["reason"] == test.reason


def test_the_same_seed_picks_the_same_sample(app, ctx, smtp):
    def sample(seed):
        alert_id = _ab_alert(100, seed=seed)
        ids = db.session.scalars(sa.select(Delivery.subscriber_id).where(
            Delivery.alert_id == alert_id, Delivery.variant.is_not(None)).order_by(Delivery.variant,
                                                                                   Delivery.subscriber_id))
        out = [db.session.get(Subscriber, i).email for i in ids]
        for table in (Delivery, AbTest, Subscriber):
            db.session.execute(sa.delete(table))
        db.session.commit()
        return out

    a, b, c = sample(3), sample(3), sample(4)
    assert a == b and a != c and len(a) == 30


@pytest.mark.commits
def test_circuit_breaker_stops_the_test_and_nobody_else_is_sent(app, ctx, smtp):
    alert_id = _ab_alert(200, seed=1, breaker_pct=5.0)
    _send_all_queued(alert_id)
    smtp.handler.wait_for(60, timeout=10)
    for v in range(3):  # 2 of 20 per variant unsubscribe: 10% > 5%
        subs = db.session.scalars(sa.select(Delivery.subscriber_id).where(
            Delivery.alert_id == alert_id, Delivery.variant == v).limit(2)).all()
        for s in subs:
            db.session.add(ConsentRecord(subscriber_id=s, event="unsubscribe:link"))
    db.session.commit()
    assert abtest.decide_due() == {alert_id: "stopped"}  # before the wait is over
    test = db.session.get(AbTest, alert_id)
    assert test.state == "stopped" and "circuit breaker" in test.reason
    assert _by_variant(alert_id)[(None, "skipped")] == 140
    db.session.rollback()
    blasts.send_batch(alert_id, 1, 10**9)
    assert blasts.status(alert_id)["state"] == "sent" and len(smtp.handler.messages) == 60


@pytest.mark.commits
def test_one_variant_tripped_loses_even_with_more_clicks(app, ctx, smtp):
    alert_id = _ab_alert(200, seed=2, breaker_pct=5.0)
    _send_all_queued(alert_id)
    smtp.handler.wait_for(60, timeout=10)
    a_rows = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id).where(
        Delivery.alert_id == alert_id, Delivery.variant == 0)).all()
    for d, s in a_rows[:10]:
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
    db.session.add(ConsentRecord(subscriber_id=a_rows[0][1], event="unsubscribe:one-click"))
    db.session.add(ConsentRecord(subscriber_id=a_rows[1][1], event="unsubscribe:link"))
    db.session.commit()
    assert abtest.decide(alert_id, force=True) == "decided"
    db.session.commit()
    test = db.session.get(AbTest, alert_id)
    assert test.winner == 1  # B: tied with C at zero, so the earlier variant
    assert "A was stopped by the circuit breaker" in test.reason


@pytest.mark.commits
def test_winner_by_signatures(app, ctx, smtp):
    alert_id = _ab_alert(200, seed=5, metric="signatures")
    _send_all_queued(alert_id)
    action_id = db.session.scalar(sa.select(Action.id).where(Action.slug == RIKERS))
    rows = db.session.execute(sa.select(Delivery.id, Subscriber.email).join(Subscriber).where(
        Delivery.alert_id == alert_id, Delivery.variant == 1)).all()
    for d, email in rows[:3]:
        db.session.add(Signature(action_id=action_id, delivery_id=d, alert_id=alert_id, email=email,
                                 email_key=email, source="alert"))
    c_rows = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id).where(
        Delivery.alert_id == alert_id, Delivery.variant == 2)).all()
    for d, s in c_rows[:9]:  # clicks do not decide a signatures test
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
    db.session.commit()
    abtest.decide(alert_id, force=True)
    db.session.commit()
    test = db.session.get(AbTest, alert_id)
    assert test.winner == 1 and test.reason.startswith("Variant B won on signatures: 3 of 20 signed")


@pytest.mark.parametrize(("kw", "message"), [
    (dict(subjects=["Only one"], sample_pct=10, wait_minutes=5), "two or more subjects"),
    (dict(subjects=["X", "X"], sample_pct=10, wait_minutes=5), "must differ"),
    (dict(subjects=["X", "Y"], sample_pct=40, wait_minutes=5), "1 to 33 percent"),
    (dict(subjects=["X", "Y"], sample_pct=10, wait_minutes=0), "--ab-wait"),
    (dict(subjects=["X", "Y"], sample_pct=10, wait_minutes=5, from_names=["a", "b", "c"]), "From names"),
])
def test_bad_ab_settings_are_refused(app, ctx, kw, message):
    from alerts.models import Alert

    alert = db.session.get(Alert, make_alert())
    with pytest.raises(abtest.AbTestError, match=message):
        abtest.configure(alert, **kw)


@pytest.mark.commits
def test_partial_signer_gets_thanks_and_the_rest_first(app, ctx, smtp):
    emails = add_confirmed(3)
    alert_id = make_alert(slugs=[DETENTION, RIKERS])
    subs = {s.email: s for s in db.session.scalars(sa.select(Subscriber))}
    ids = {slug: db.session.scalar(sa.select(Action.id).where(Action.slug == slug))
           for slug in (DETENTION, RIKERS)}
    # sub0 signed Rikers as a subscriber; sub1 signed Detention with the address only; sub2 nothing.
    db.session.add(Signature(action_id=ids[RIKERS], subscriber_id=subs[emails[0]].id, email=emails[0],
                             email_key=emails[0], source="action-center"))
    db.session.add(Signature(action_id=ids[DETENTION], email=emails[1].upper(), email_key=emails[1],
                             source="action-center"))
    db.session.commit()
    blasts.launch(alert_id)
    _send_all_queued(alert_id)
    got = {m.rcpt_tos[0]: m.message for m in smtp.handler.wait_for(3, timeout=10)}
    text0 = got[emails[0]].get_body(("plain",)).get_content()
    assert ("You signed Call on Mayor Adams to Follow the Law and Close Rikers Island, thank you; now:"
            in text0)
    assert "Detention is No Place" in text0 and "Close Rikers Island\n  " not in text0
    html1 = got[emails[1]].get_body(("html",)).get_content()
    assert "You signed Detention is No Place for a Child, thank you" in html1
    assert "Sign the Petition" in html1 and "<h2>Detention" not in html1
    text2 = got[emails[2]].get_body(("plain",)).get_content()
    assert "thank you" not in text2 and "Detention" in text2 and "Rikers" in text2


def test_cli_create_with_audience_and_ab_and_audience_json(app, ctx):
    add_confirmed(10)
    make_alert()
    runner = app.test_cli_runner()
    created = runner.invoke(args=[
        "alert", "create", "--subject", "A", "--intro", "x", "--action", RIKERS,
        "--except-signers-of", DETENTION, "--topic", "detention", "--subject-b", "B",
        "--ab-sample", "20", "--ab-wait", "90"])
    assert created.exit_code == 0, created.output
    alert_id = int(created.stdout)
    out = runner.invoke(args=["alert", "audience", str(alert_id), "--json"])
    data = json.loads(out.stdout)
    assert data["size"] == 10
    assert data["rules"] == {"except_signers_of": [DETENTION], "topics": ["detention"]}
    assert data["description"].startswith("everyone confirmed, who chose Detention (or chose no topics), "
                                          "except those who signed Detention")
    test = db.session.get(AbTest, alert_id)
    assert (test.sample_pct, test.wait_minutes, [v["subject"] for v in test.variants]) == (20, 90, ["A", "B"])
    bad = runner.invoke(args=["alert", "create", "--subject", "A", "--intro", "x",
                              "--only-signers-of", "nope"])
    assert bad.exit_code == 2 and "no action with slug nope" in bad.output
    bad = runner.invoke(args=["alert", "create", "--subject", "A", "--intro", "x", "--subject-b", "B"])
    assert bad.exit_code == 2 and "--ab-sample" in bad.output


@pytest.mark.slow
def test_ab_test_with_real_workers_and_beat(app, ctx, smtp, workers):
    """Worker processes send the samples; beat decides once the wait is over and the rest go once."""
    from alerts.blasts import state
    from tests.processes import send_task

    emails = add_confirmed(400)
    alert_id = make_alert(subject="Subject A")
    from alerts.models import Alert

    abtest.configure(db.session.get(Alert, alert_id), subjects=["Subject A", "Subject B"],
                     sample_pct=10, wait_minutes=1, seed=11)
    state.start_blast(alert_id)
    abtest.start(alert_id)
    db.session.commit()
    workers.start(name="ab")  # with beat: the sweep and the A/B decisions every second
    send_task(workers.redis.url, workers.name, "alerts.tasks.dispatch_blast", alert_id)
    samples = smtp.handler.wait_for(80, timeout=60)
    assert collections.Counter(m.message["Subject"] for m in samples) == {"Subject A": 40, "Subject B": 40}
    time.sleep(2)  # beat ticks: nothing more goes before the wait is over
    assert len(smtp.handler.messages) == 80
    db.session.rollback()
    assert blasts.status(alert_id)["state"] == "sending"
    b_rows = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id).where(
        Delivery.alert_id == alert_id, Delivery.variant == 1)).all()
    for d, s in b_rows[:5]:
        db.session.add(Click(alert_id=alert_id, delivery_id=d, subscriber_id=s))
    db.session.execute(sa.update(AbTest).values(decide_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    status = wait_for_state(alert_id, timeout=60)
    assert status["state"] == "sent", status
    msgs = smtp.handler.wait_for(400, timeout=20)
    per = collections.Counter(r for m in msgs for r in m.rcpt_tos)
    assert per == {e: 1 for e in emails}  # everyone exactly once: nobody got two variants
    assert collections.Counter(m.message["Subject"] for m in msgs) == {"Subject A": 40, "Subject B": 360}
    db.session.rollback()
    test = db.session.get(AbTest, alert_id)
    assert (test.state, test.winner) == ("decided", 1)
    assert test.reason.startswith("Variant B won on clicks: 5 of 40 clicked (12.5%) against A's 0 of 40")
