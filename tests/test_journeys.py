"""Journeys with a clock the test controls: who enters, who gets which step when, and who leaves."""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from alerts import journeys, queueing, tasknames
from alerts.extensions import db
from alerts.models import (
    Action,
    Alert,
    AlertState,
    Delivery,
    DeliveryStatus,
    Journey,
    JourneyMember,
    JourneyStep,
    Subscriber,
)
from alerts.subscribers import subscriptions
from tests.helpers import add_confirmed, blasts, confirm_token_for, make_alert, seed_actions

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def published(monkeypatch) -> list[tuple]:
    sent: list[tuple] = []
    monkeypatch.setattr(queueing, "_send", lambda name, args: sent.append((name, tuple(args))))
    return sent


def run(now: datetime) -> journeys.engine.Pass:
    done = journeys.run_due(now)
    db.session.commit()
    return done


def deliver(now: datetime) -> int:
    """What the batches do with the queued rows, at the test's time."""
    n = db.session.execute(sa.update(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)
                           .values(status=DeliveryStatus.SENT, sent_at=now)).rowcount
    db.session.commit()
    return n


def steps_got(subscriber_id: int) -> list[str]:
    return list(db.session.scalars(
        sa.select(Alert.subject).join(Delivery, Delivery.alert_id == Alert.id)
        .where(Delivery.subscriber_id == subscriber_id).order_by(Delivery.id)))


def member(journey_id: int, subscriber_id: int) -> JourneyMember:
    db.session.expire_all()
    return db.session.scalars(sa.select(JourneyMember).where(
        JourneyMember.journey_id == journey_id, JourneyMember.subscriber_id == subscriber_id)).one()


def confirm(client, email: str) -> int:
    sub = Subscriber(email=email, status="pending", confirm_nonce="n1")
    db.session.add(sub)
    db.session.commit()
    token = confirm_token_for(sub.id, "n1")
    assert client.post(f"/confirm/{token}").status_code == 200
    return sub.id


def default_journey() -> Journey:
    return db.session.scalars(sa.select(Journey).where(Journey.name == journeys.DEFAULT_NAME)).one()


def test_a_person_confirming_enters_new_subscribers_and_gets_each_step_once_at_its_time(
        app, ctx, client, published):
    seed_actions()
    sub_id = confirm(client, "newbie@example.org")
    # The confirmation queues the entry (and the welcome) once it commits.
    entry = [args for name, args in published if name == tasknames.ENTER_JOURNEYS]
    assert entry == [("confirmed", [sub_id])]
    assert journeys.enter(*entry[0], now=T0) == 1
    db.session.commit()
    journey = default_journey()
    assert [s.is_welcome for s in journey.steps] == [True, False, False]
    assert [s.after_minutes for s in journey.steps] == [0, 2 * 24 * 60, 5 * 24 * 60]

    assert run(T0).skipped == 1  # step 1 is the welcome email, sent by confirming
    assert steps_got(sub_id) == []
    assert member(journey.id, sub_id).due_at == T0 + 2 * DAY
    assert run(T0 + 2 * DAY - timedelta(minutes=1)).looked_at == 0
    assert run(T0 + 2 * DAY).queued == 1
    assert steps_got(sub_id) == ["Here is what we do, {first_name|friend}"]
    deliver(T0 + 2 * DAY)
    # Beat again at the same time, and again, gives nothing more.
    assert run(T0 + 2 * DAY).looked_at == 0
    assert run(T0 + 7 * DAY - timedelta(seconds=1)).looked_at == 0
    assert run(T0 + 7 * DAY).queued == 1
    deliver(T0 + 7 * DAY)
    assert steps_got(sub_id) == ["Here is what we do, {first_name|friend}",
                                 "Pick one action for children this week"]
    left = member(journey.id, sub_id)
    assert (left.exit_reason, left.due_at) == ("completed", None)
    assert run(T0 + 60 * DAY).looked_at == 0
    assert len(steps_got(sub_id)) == 2
    # Step alerts stand: never a blast, never finished, not in the alert list.
    states = set(db.session.scalars(sa.select(Alert.state)))
    assert states == {AlertState.JOURNEY}
    # A person cannot enter again (each passes each step at most once).
    assert journeys.enter("confirmed", [sub_id], now=T0 + 61 * DAY) == 0


def sign(client, slug: str, email: str):
    html = client.get(f"/actions/{slug}").get_data(as_text=True)
    data = {**dict(HIDDEN_RE.findall(html)), "csrf_token": TOKEN_RE.search(html).group(1), "website": "",
            "name": "Ana Signer", "email": email, "postal_code": "10027"}
    return client.post(f"/actions/{slug}/sign", data=data, environ_base={"REMOTE_ADDR": "198.51.100.20"})


def test_signing_the_action_a_step_asks_for_skips_that_step(app, ctx, client, published):
    seed_actions()
    (email,) = add_confirmed(1, "signer")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    journeys.enter("confirmed", [sub_id], now=T0)
    db.session.commit()
    journey = default_journey()
    last = journey.steps[-1]
    asked = db.session.get(Action, last.unless_signed_action_id)
    run(T0)
    run(T0 + 2 * DAY)
    deliver(T0 + 2 * DAY)
    assert sign(client, asked.slug, email).status_code in (302, 303)
    run(T0 + 7 * DAY)
    assert steps_got(sub_id) == ["Here is what we do, {first_name|friend}"]  # step 3 skipped
    assert member(journey.id, sub_id).exit_reason == "completed"


def test_a_signer_enters_the_journey_of_signed_slug_and_is_invited_to_the_next(app, ctx, client, published):
    seed_actions()
    first, nxt = db.session.scalars(sa.select(Action).order_by(Action.position).limit(2)).all()
    ladder = journeys.create("After the first signature", f"signed:{first.slug}")
    journeys.add_step(ladder, after_minutes=60, subject="One more for children", body="You signed. Now this:",
                      action_slugs=[nxt.slug], unless_signed=nxt.slug)
    db.session.commit()
    (email,) = add_confirmed(1, "ladder")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    assert sign(client, first.slug, email).status_code in (302, 303)
    signed = [args for name, args in published if name == tasknames.JOURNEY_SIGNED]
    assert len(signed) == 1
    assert journeys.on_signature(*signed[0], now=T0) == 1
    db.session.commit()
    assert run(T0 + timedelta(minutes=59)).looked_at == 0
    assert run(T0 + timedelta(minutes=60)).queued == 1
    assert steps_got(sub_id) == ["One more for children"]


def test_unsubscribing_exits(app, ctx):
    seed_actions()
    a, b = add_confirmed(2, "leaver")
    ids = {r.email: r.id for r in db.session.execute(sa.select(Subscriber.email, Subscriber.id))}
    journeys.enter("confirmed", [ids[a], ids[b]], now=T0)
    db.session.commit()
    run(T0)
    subscriptions.unsubscribe(ids[a], subscriptions.Request(ip=None, user_agent=None, source="link"))
    db.session.commit()
    assert run(T0 + 2 * DAY).queued == 1
    journey = default_journey()
    assert member(journey.id, ids[a]).exit_reason == "unsubscribed"
    assert steps_got(ids[a]) == []
    assert len(steps_got(ids[b])) == 1


def test_a_suppressed_address_exits(app, ctx):
    from tests.helpers import bounces

    seed_actions()
    (email,) = add_confirmed(1, "bounced")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    journeys.enter("confirmed", [sub_id], now=T0)
    db.session.commit()
    bounces.suppress(email, "hard-bounce", "550 no such user")
    run(T0)
    assert member(default_journey().id, sub_id).exit_reason == "suppressed"


def test_the_daily_cap_holds_when_a_blast_and_two_journeys_coincide(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "JOURNEY_DAILY_CAP", 2)
    seed_actions()
    (email,) = add_confirmed(1, "busy")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    one = journeys.create("Imported A", "imported")
    two = journeys.create("Imported B", "imported")
    journeys.add_step(one, after_minutes=0, subject="From A", body="A")
    journeys.add_step(two, after_minutes=0, subject="From B", body="B")
    blast = db.session.get(Alert, make_alert("The blast"))
    db.session.add(Delivery(alert_id=blast.id, subscriber_id=sub_id, status=DeliveryStatus.SENT,
                            sent_at=T0 - timedelta(hours=1)))
    db.session.commit()
    assert journeys.enter_imported(one, [email], now=T0) == 1
    assert journeys.enter_imported(two, [email], now=T0) == 1
    db.session.commit()
    done = run(T0)
    assert (done.queued, done.postponed) == (1, 1)
    got = steps_got(sub_id)
    assert got[0] == "The blast" and len(got) == 2  # the blast and one journey's step
    later = member(two.id, sub_id) if got[1] == "From A" else member(one.id, sub_id)
    # Waits until the blast's email is 24 hours old.
    assert later.due_at == T0 + timedelta(hours=23) and later.next_position == 1
    deliver(T0)
    assert run(T0 + timedelta(hours=22)).looked_at == 0
    assert run(T0 + timedelta(hours=23)).queued == 1
    assert sorted(steps_got(sub_id)) == ["From A", "From B", "The blast"]
    # Never more than two in any 24 hours.
    sent = sorted(db.session.scalars(sa.select(Delivery.sent_at).where(Delivery.subscriber_id == sub_id)
                                     .where(Delivery.sent_at.is_not(None))))
    deliver(T0 + timedelta(hours=23))
    assert len(sent) == 2


def test_changes_to_a_running_journey_apply_to_those_who_have_not_reached_the_step(app, ctx):
    seed_actions()
    a, b = add_confirmed(2, "edit")
    ids = {r.email: r.id for r in db.session.execute(sa.select(Subscriber.email, Subscriber.id))}
    journey = journeys.create("Edited", "imported")
    first = journeys.add_step(journey, after_minutes=0, subject="First", body="one")
    journeys.add_step(journey, after_minutes=60, subject="Second", body="two")
    db.session.commit()
    journeys.enter_imported(journey, [a], now=T0)
    db.session.commit()
    run(T0)
    deliver(T0)
    # While a is between steps: the first is rewritten (for those who have not reached it),
    # a third is added (a reaches it too), and a fourth is added and removed (nobody gets it).
    journeys.update_step(first, after_minutes=0, subject="First, rewritten", body="one")
    third = journeys.add_step(journey, after_minutes=30, subject="Third", body="three")
    fourth = journeys.add_step(journey, after_minutes=10, subject="Fourth", body="four")
    journeys.remove_step(fourth)
    db.session.commit()
    journeys.enter_imported(journey, [b], now=T0)
    db.session.commit()
    for minutes in (1, 61, 91, 200, 2 * 24 * 60):
        run(T0 + timedelta(minutes=minutes))
        deliver(T0 + timedelta(minutes=minutes))
    steps = [s.alert_id for s in db.session.scalars(
        sa.select(JourneyStep).where(JourneyStep.journey_id == journey.id).order_by(JourneyStep.position))]
    got = {who: list(db.session.scalars(sa.select(Delivery.alert_id).where(Delivery.subscriber_id == ids[who])
                                        .order_by(Delivery.id))) for who in (a, b)}
    assert got[a] == got[b] == steps[:3]
    assert db.session.get(Alert, first.alert_id).subject == "First, rewritten"  # read at send time
    assert third.alert_id in got[b] and fourth.alert_id not in got[a] + got[b]
    assert {member(journey.id, ids[w]).exit_reason for w in (a, b)} == {"completed"}


def test_a_paused_journey_sends_nothing_until_resumed(app, ctx):
    seed_actions()
    (email,) = add_confirmed(1, "paused")
    journey = journeys.create("Paused", "imported")
    journeys.add_step(journey, after_minutes=0, subject="Hello", body="hi")
    journeys.enter_imported(journey, [email], now=T0)
    journeys.set_paused(journey, True)
    db.session.commit()
    assert run(T0 + DAY).looked_at == 0
    with pytest.raises(journeys.JourneyError, match="already paused"):
        journeys.set_paused(journey, True)
    journeys.set_paused(journey, False)
    db.session.commit()
    assert run(T0 + DAY).queued == 1


def test_cli_list_json_shape_and_add_step(app, ctx):
    seed_actions()
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["journey", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    items = json.loads(listed.output)
    assert [i["name"] for i in items] == ["New subscribers"]
    (item,) = items
    assert set(item) == {"id", "name", "trigger", "steps"} and item["trigger"] == "confirmed"
    assert [set(s) for s in item["steps"]] == [{"after_minutes", "subject", "unless_signed"}] * 3
    assert item["steps"][0]["after_minutes"] == 0
    assert item["steps"][2]["unless_signed"] is not None
    slug = db.session.scalars(sa.select(Action.slug).order_by(Action.position)).first()
    added = runner.invoke(args=["journey", "add-step", str(item["id"]), "--after", "1440", "--subject",
                                "A fourth email", "--body", "Thank you, {first_name|friend}.",
                                "--unless-signed", slug])
    assert added.exit_code == 0, added.output
    assert added.output.startswith(f"Step 4 of journey {item['id']} (New subscribers): after 1,440 minutes")
    steps = json.loads(runner.invoke(args=["journey", "list", "--json"]).output)[0]["steps"]
    assert steps[-1] == {"after_minutes": 1440, "subject": "A fourth email", "unless_signed": slug}
    bad = runner.invoke(args=["journey", "add-step", str(item["id"]), "--after", "5", "--subject", "x",
                              "--body", "y", "--unless-signed", "no-such-action"])
    assert bad.exit_code != 0 and "Error: there is no action “no-such-action”" in bad.output
    assert "Traceback" not in bad.output
    missing = runner.invoke(args=["journey", "pause", "999"])
    assert missing.exit_code != 0 and "there is no journey 999" in missing.output
    assert runner.invoke(args=["journey", "pause", str(item["id"])]).exit_code == 0
    again = runner.invoke(args=["journey", "pause", str(item["id"])])
    assert again.exit_code != 0 and "already paused" in again.output
    assert runner.invoke(args=["journey", "resume", str(item["id"])]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(Journey, item["id"]).paused is False
    text = runner.invoke(args=["journey", "list"]).output
    assert "New subscribers" in text and "A fourth email" in text


def test_import_enters_a_journey_only_when_the_importer_says_so(app, ctx, tmp_path):
    seed_actions()
    journey = journeys.create("Imported welcome", "imported")
    journeys.add_step(journey, after_minutes=0, subject="Hi", body="hi")
    db.session.commit()
    csv = tmp_path / "people.csv"
    csv.write_text("email\none@example.org\ntwo@example.org\n", encoding="utf-8")
    runner = app.test_cli_runner()
    plain = runner.invoke(args=["subscribers", "import", str(csv), "--consent", "documented",
                                "--source", "Paper petition"])
    assert plain.exit_code == 0, plain.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)) == 0
    wrong = runner.invoke(args=["subscribers", "import", str(csv), "--consent", "documented",
                                "--source", "Paper petition", "--journey", "New subscribers"])
    assert wrong.exit_code != 0 and "no journey named" in wrong.output
    asked = runner.invoke(args=["subscribers", "import", str(csv), "--consent", "documented",
                                "--source", "Paper petition", "--journey", "Imported welcome"])
    assert asked.exit_code == 0, asked.output
    assert "2 subscribers entered the journey" in asked.output
    assert db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)) == 2


@pytest.mark.commits
def test_a_step_goes_out_through_the_blast_engine_and_its_alert_stands(app, ctx, smtp, celery_worker):
    seed_actions()
    emails = add_confirmed(30, "engine")
    journey = journeys.create("Engine", "imported")
    step = journeys.add_step(journey, after_minutes=0, subject="Hello {first_name|friend}",
                             body="Welcome aboard.", action_slugs=None)
    db.session.commit()
    journeys.enter_imported(journey, emails, now=T0)
    db.session.commit()
    run(T0)  # the batches go out after this commit, to the session's worker
    msgs = smtp.handler.wait_for(30, timeout=30)
    assert collections.Counter(r for m in msgs for r in m.rcpt_tos) == {e: 1 for e in emails}
    m = msgs[0].message
    assert m["Subject"] == "Hello friend" and m["List-Unsubscribe"].startswith("<https://")
    celery_worker.wait_idle()
    db.session.expire_all()
    alert = db.session.get(Alert, step.alert_id)
    assert alert.state == AlertState.JOURNEY  # a finished batch never ends a journey step
    assert blasts.counts(alert.id)["sent"] == 30


@pytest.mark.slow
def test_a_worker_killed_while_steps_are_sent_and_beat_restarted(app, ctx, smtp, workers):
    """Nobody gets a step twice (outside the SMTP window) or never."""
    seed_actions()
    emails = add_confirmed(600, "killed")
    journey = journeys.create("Killed", "imported")
    journeys.add_step(journey, after_minutes=0, subject="Step one", body="one")
    db.session.commit()
    journeys.enter_imported(journey, emails, now=datetime.now(UTC) - timedelta(minutes=1))
    db.session.commit()
    stall, release = threading.Event(), threading.Event()

    def data_reply(rcpt_tos):
        if rcpt_tos == [emails[321]] and not release.is_set():
            stall.set()
            release.wait(30)
            return "451 4.3.0 connection lost"
        return None

    smtp.handler.data_reply = data_reply
    first = workers.start(name="doomed", concurrency=1, JOURNEY_SWEEP_SECONDS="1")
    assert stall.wait(60), "the journey's step never reached the stalled message"

    def recorded() -> int:
        db.session.rollback()
        return db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)
                                 .where(Delivery.status == DeliveryStatus.SENT))

    # Every 250 is committed within a flush interval, even mid-stall: killed after that, only
    # the stalled message is inside the SMTP window (sent, its answer never read).
    deadline = time.monotonic() + 10
    while recorded() < len(smtp.messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert recorded() == len(smtp.messages)
    first.kill()
    release.set()
    accepted = len(smtp.messages)
    assert 0 < accepted < 600
    workers.start(name="rescuer", JOURNEY_SWEEP_SECONDS="1")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        db.session.rollback()
        left = db.session.scalar(sa.select(sa.func.count()).select_from(Delivery).where(
            Delivery.status.in_([DeliveryStatus.QUEUED, DeliveryStatus.SENDING])))
        members_left = db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)
                                         .where(JourneyMember.exited_at.is_(None)))
        if not left and not members_left:
            break
        time.sleep(0.3)
    counts = collections.Counter(r for m in smtp.messages for r in m.rcpt_tos)
    assert not {e: n for e, n in counts.items() if n > 1}, "a step sent twice"
    assert set(counts) == set(emails), f"never sent: {sorted(set(emails) - set(counts))[:5]}"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Delivery)
                             .where(Delivery.status == DeliveryStatus.SENT)) == 600
    step = db.session.scalars(sa.select(JourneyStep).where(JourneyStep.journey_id == journey.id)).one()
    assert db.session.get(Alert, step.alert_id).state == AlertState.JOURNEY


def test_a_step_alert_opens_its_step_and_has_a_report(app, staff_client):
    with app.app_context():
        seed_actions()
        journey = journeys.ensure_default()
        db.session.commit()
        step = journey.steps[1]
        ids = (journey.id, step.id, step.alert_id)
    page = staff_client.get(f"/staff/alerts/{ids[2]}")
    assert page.status_code == 303
    assert page.headers["Location"].endswith(f"/staff/journeys/{ids[0]}/steps/{ids[1]}")
    report = staff_client.get(f"/staff/alerts/{ids[2]}/report")
    assert report.status_code == 200 and "Here is what we do" in report.get_data(as_text=True)
    listing = staff_client.get("/staff/alerts").get_data(as_text=True)
    assert "Here is what we do" not in listing  # steps are on their journey's page, not among alerts
    journey_page = staff_client.get(f"/staff/journeys/{ids[0]}").get_data(as_text=True)
    assert "Pick one action for children this week" in journey_page and "Welcome email" in journey_page


def test_the_staff_import_form_puts_people_in_a_journey_only_when_chosen(app, staff_client):
    import io

    from tests.helpers import csrf_token

    with app.app_context():
        seed_actions()
        journey = journeys.create("Paper petition follow-up", "imported")
        journeys.add_step(journey, after_minutes=0, subject="Thanks for signing on paper", body="Hi")
        db.session.commit()
        journey_id = journey.id

    def upload(rows: str, **fields):
        data = {"csrf_token": csrf_token(staff_client, "/staff/subscribers/import"),
                "file": (io.BytesIO(rows.encode()), "list.csv"), "consent": "documented",
                "source": "Paper petition, Pride march", **fields}
        return staff_client.post("/staff/subscribers/import", data=data, content_type="multipart/form-data")

    page = staff_client.get("/staff/subscribers/import").get_data(as_text=True)
    assert "Put them in a journey" in page and "Paper petition follow-up" in page
    assert upload("email\nfirst@example.org\n").status_code == 200
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)) == 0
    dry = upload("email\na@example.org\nb@example.org\n", journey=str(journey_id), dry_run="y")
    body = dry.get_data(as_text=True)
    form = body.split('id="import-for-real"', 1)[1].split("</form>", 1)[0]
    fields = dict(re.findall(r'name="([^"]+)"[^>]*value="([^"]*)"', form))
    assert fields["journey"] == str(journey_id)  # "Import for real" keeps the choice
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)) == 0
    real = staff_client.post("/staff/subscribers/import", data=fields)
    assert "2 subscribers entered the journey “Paper petition follow-up”" in real.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(JourneyMember)) == 2
