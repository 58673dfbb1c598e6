"""Click tracking: tracked links in a real blast, the /r/ redirect, machine clicks, the three
modes, recording through Redis exactly once, erasure, retention and the report's figures."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import (
    Action,
    Alert,
    Click,
    ClickBatch,
    ClickCount,
    Delivery,
    Signature,
    Subscriber,
    utcnow,
)
from alerts.reports import alert_report
from alerts.tracking import drain, recording, retention
from tests.helpers import privacy_steps
from tests.tracking_helpers import (
    BROWSER_UA,
    TWO,
    click,
    links_by_recipient,
    queued,
    record_all,
    send_blast,
)


def _clicks() -> list[Click]:
    return list(db.session.scalars(sa.select(Click).order_by(Click.id)))


@pytest.mark.commits
def test_every_action_link_is_tracked_and_leads_to_its_action(app, ctx, client, smtp):
    alert_id = send_blast(3, TWO)
    links = links_by_recipient(smtp)
    assert len(links) == 3
    tokens = set()
    for n, urls in enumerate(links.values()):
        assert len(urls) == 2
        token = {u.split("/r/")[1].split("/")[0] for u in urls}
        assert len(token) == 1  # one token per recipient, the link index after it
        tokens |= token
        assert len(next(iter(token))) <= 24
        for index, url in enumerate(urls):
            assert urlsplit(url).path.endswith(f"/{index}")
            # One link opened by the person, the other only looked at (HEAD: a machine's).
            answer = click(client, url, method="GET" if index == n % 2 else "HEAD")
            assert answer.status_code == 302
            # (the action's own query, the signing reference, passes through)
            assert answer.headers["Location"] == (
                f"https://alerts.example.org/actions/{TWO[index]}?{urlsplit(url).query}")
            assert answer.headers["Cache-Control"] == "no-store"
    assert len(tokens) == 3
    # The HTML part has the same links (the buttons).
    html = smtp.handler.messages[0].message.get_body(("html",)).get_content()
    assert links_by_recipient(smtp)[smtp.handler.messages[0].rcpt_tos[0]][0] in html
    assert queued() == 6
    result = record_all()
    assert (result.clicks, result.machine, result.batches) == (6, 3, 1)
    rows = _clicks()
    assert len(rows) == 6 and sum(r.machine for r in rows) == 3
    by_email = dict(db.session.execute(sa.select(Subscriber.id, Subscriber.email)).all())
    slugs = dict(db.session.execute(sa.select(Action.id, Action.slug)).all())
    for row in rows:
        assert row.alert_id == alert_id
        assert slugs[row.action_id] == TWO[row.link_index]
        delivery = db.session.get(Delivery, row.delivery_id)
        assert delivery.subscriber_id == row.subscriber_id and by_email[row.subscriber_id]
    assert queued() == 0


@pytest.mark.commits
def test_tampered_or_unknown_links_are_404_and_record_nothing(app, ctx, client, smtp):
    send_blast(1, TWO)
    url = links_by_recipient(smtp)["reader00000@example.org"][0]
    base, index = url.rsplit("/", 1)
    token = base.rsplit("/", 1)[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    tampered = [
        base.replace(token, flipped) + "/0",
        base.replace(token, token[:5] + ("x" if token[5] != "x" else "y") + token[6:]) + "/0",
        base.replace(token, token + "A") + "/0",
        base + "/7",  # not a link of this alert
        base + "/-1",
        "https://alerts.example.org/r/not-a-token/0",
        "https://alerts.example.org/r//0",
    ]
    for bad in tampered:
        assert click(client, bad).status_code == 404, bad
    assert queued() == 0
    assert record_all().clicks == 0 and _clicks() == []


@pytest.mark.commits
def test_head_prefetch_scanner_agents_and_bursts_are_machine_clicks(app, ctx, client, smtp):
    send_blast(4, TWO)
    links = links_by_recipient(smtp)
    a, b, c, d = (links[f"reader0000{i}@example.org"] for i in range(4))
    assert click(client, a[0], method="HEAD").status_code == 302
    assert click(client, a[1], headers={"Sec-Purpose": "prefetch;prerender"}).status_code == 302
    assert click(client, b[0], agent="Mozilla/5.0 (compatible; Barracuda Sentinel)").status_code == 302
    assert click(client, b[1], agent="").status_code == 302
    # A scanner opening both links of one message at once.
    click(client, c[0])
    click(client, c[1])
    # A person: one link, and again a minute later; then the other link.
    click(client, d[0])
    record_all()
    click(client, d[0])
    click(client, d[1])
    r = recording.client()
    key = recording.queue_key()
    # Make the second visit a minute and two minutes later than the first.
    items = [i.decode().split("|") for i in r.lrange(key, 0, -1)]
    first_at = db.session.scalar(sa.select(Click.at).where(Click.machine.is_(False)))
    r.delete(key)
    for n, item in enumerate(items, start=1):
        item[0] = f"{first_at.timestamp() + 60 * n:.3f}"
        r.rpush(key, "|".join(item))
    record_all()
    rows = _clicks()
    emails = dict(db.session.execute(sa.select(Subscriber.id, Subscriber.email)).all())
    machine = sorted(emails[x.subscriber_id] for x in rows if x.machine)
    human = sorted(emails[x.subscriber_id] for x in rows if not x.machine)
    assert machine == [f"reader0000{i}@example.org" for i in (0, 0, 1, 1, 2, 2)]
    assert human == ["reader00003@example.org"] * 3
    data = alert_report.report(rows[0].alert_id)
    assert data["clicks"] == {"unique": 1, "total": 3, "machine": 6}
    assert [(x["slug"], x["unique_clicks"], x["total_clicks"]) for x in data["by_action"]] == [
        (TWO[0], 1, 2), (TWO[1], 1, 1)]


@pytest.mark.commits
def test_a_burst_across_two_drains_turns_the_earlier_click_into_a_machine_click(app, ctx, client, smtp):
    send_blast(1, TWO)
    urls = links_by_recipient(smtp)["reader00000@example.org"]
    click(client, urls[0])
    record_all()
    assert [x.machine for x in _clicks()] == [False]
    click(client, urls[1])  # within a second of the first: a scanner
    record_all()
    assert [x.machine for x in _clicks()] == [True, True]


@pytest.mark.commits
def test_a_burst_split_across_drains_keeps_counting_its_machine_clicks(app, ctx, client, smtp):
    """A scanner's third click that lands in the next batch joins the burst the first two made."""
    send_blast(1, TWO)
    urls = links_by_recipient(smtp)["reader00000@example.org"]
    click(client, urls[0])
    click(client, urls[1])
    record_all()
    assert [x.machine for x in _clicks()] == [True, True]
    click(client, urls[0])
    record_all()
    assert [(x.machine, x.machine_reason) for x in _clicks()] == [(True, "burst")] * 3


@pytest.mark.commits
def test_a_link_checker_before_a_person_does_not_make_the_person_a_machine(app, ctx, client, smtp):
    """Only bursts carry over between drains: a HEAD then a person's click of another link is a person."""
    send_blast(1, TWO)
    urls = links_by_recipient(smtp)["reader00000@example.org"]
    click(client, urls[0], method="HEAD")
    record_all()
    click(client, urls[1])
    record_all()
    assert [(x.machine, x.machine_reason) for x in _clicks()] == [(True, "head"), (False, None)]


@pytest.mark.commits
def test_the_destination_query_string_passes_through_unchanged(app, ctx, client, smtp, monkeypatch):
    """Signing puts a signed per-recipient reference on each action link; /r/ keeps it."""
    send_blast(1, TWO)
    url = links_by_recipient(smtp)["reader00000@example.org"][1]
    query = urlsplit(url).query
    assert urlsplit(url).path.endswith("/1") and query.startswith("r=")
    answer = click(client, url)
    assert answer.headers["Location"] == f"https://alerts.example.org/actions/{TWO[1]}?{query}"


@pytest.mark.commits
def test_links_lead_where_they_led_when_the_blast_started(app, ctx, client, smtp):
    alert_id = send_blast(1, TWO)
    url = links_by_recipient(smtp)["reader00000@example.org"][0]
    action = db.session.scalar(sa.select(Action).where(Action.slug == TWO[0]))
    action.url = "https://evil.example/phish"
    db.session.commit()
    app.extensions.pop("alerts.alert_links", None)
    location = click(client, url).headers["Location"]
    assert location.split("?")[0] == f"https://alerts.example.org/actions/{TWO[0]}"
    assert alert_id


@pytest.mark.commits
def test_track_clicks_off_sends_plain_links_and_stores_nothing(app, ctx, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "TRACK_CLICKS", "off")
    send_blast(2, TWO)
    for received in smtp.handler.messages:
        text = received.message.get_body(("plain",)).get_content()
        html = received.message.get_body(("html",)).get_content()
        assert "/r/" not in text and "/r/" not in html
        assert f"https://alerts.example.org/actions/{TWO[0]}" in text
    assert record_all().clicks == 0
    assert _clicks() == [] and db.session.scalar(sa.select(sa.func.count()).select_from(ClickCount)) == 0


@pytest.mark.commits
def test_links_sent_before_tracking_was_turned_off_still_work_and_count_nothing(
        app, ctx, client, smtp, monkeypatch):
    send_blast(1, TWO)
    url = links_by_recipient(smtp)["reader00000@example.org"][0]
    monkeypatch.setitem(app.config, "TRACK_CLICKS", "off")
    assert click(client, url).status_code == 302
    assert queued() == 0


@pytest.mark.commits
def test_aggregate_keeps_counts_only_and_counts_each_person_once(app, ctx, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "TRACK_CLICKS", "aggregate")
    alert_id = send_blast(3, TWO)
    links = links_by_recipient(smtp)
    a, b = links["reader00000@example.org"], links["reader00001@example.org"]
    click(client, a[0])
    record_all()
    click(client, a[0])  # the same person again, in a later batch
    click(client, b[1])
    click(client, b[0], method="HEAD")
    record_all()
    assert _clicks() == []
    data = alert_report.report(alert_id)
    assert data["clicks"] == {"unique": 2, "total": 3, "machine": 1}
    assert [(x["unique_clicks"], x["total_clicks"], x["machine_clicks"]) for x in data["by_action"]] == [
        (1, 2, 1), (1, 1, 0)]
    assert data["first_hour"]["clicks"] == {"unique": 2, "total": 3}
    stored = {c.link_index: (c.clicks, c.unique_clicks, c.machine_clicks)
              for c in db.session.scalars(sa.select(ClickCount))}
    assert stored == {-1: (3, 2, 1), 0: (2, 1, 1), 1: (1, 1, 0)}


def _queued_at(*offsets: float) -> float:
    """Give the queued clicks these times (seconds after the first), in order; returns the first's."""
    r, key = recording.client(), recording.queue_key()
    items = [i.decode().split("|") for i in r.lrange(key, 0, -1)]
    first = float(items[0][0])
    r.delete(key)
    for item, offset in zip(items, offsets, strict=True):
        item[0] = f"{first + offset:.3f}"
        r.rpush(key, "|".join(item))
    return first


def _scanner_and_person(app, smtp, monkeypatch, mode: str) -> tuple[int, list[str], list[str]]:
    """An alert sent to two in this tracking mode: its id, and the links of the one whose
    mail a scanner reads and of the one a person reads."""
    monkeypatch.setitem(app.config, "TRACK_CLICKS", mode)
    alert_id = send_blast(2, TWO)
    links = links_by_recipient(smtp)
    return alert_id, links["reader00000@example.org"], links["reader00001@example.org"]


@pytest.mark.commits
@pytest.mark.parametrize("mode", ["person", "aggregate"])
def test_a_burst_across_the_recorders_cut_is_recorded_together(app, ctx, client, smtp, monkeypatch, mode):
    """A scanner's clicks on either side of a drain's hold-back cut wait and are recorded in one
    batch, so the burst is seen whole in either mode (aggregate has no rows to look back at);
    a person's lone click beside them is recorded at once."""
    alert_id, scanner, person = _scanner_and_person(app, smtp, monkeypatch, mode)
    click(client, scanner[0])
    click(client, person[0])
    click(client, scanner[1])
    first = _queued_at(0, 0.2, 1.0)
    hold = app.config["CLICK_HOLD_SECONDS"]
    early = drain.drain(now=first + 0.5 + hold)  # the cut falls between the scanner's two clicks
    db.session.rollback()
    assert (early.clicks, early.machine) == (1, 0)  # the person's click; the scanner's waits
    assert queued() == 2
    record_all()
    data = alert_report.report(alert_id)
    assert data["clicks"] == {"unique": 1, "total": 1, "machine": 2}


@pytest.mark.commits
@pytest.mark.parametrize("mode", ["person", "aggregate"])
def test_a_burst_across_a_full_batchs_end_is_recorded_together(app, ctx, client, smtp, monkeypatch, mode):
    """Cut by the batch's size, a recipient's clicks before the cut go with the next batch; a
    batch that would hold back everything it took takes it as it is (no run stalls)."""
    monkeypatch.setattr(drain, "BATCH_SIZE", 2)
    alert_id, scanner, person = _scanner_and_person(app, smtp, monkeypatch, mode)
    click(client, person[0])
    click(client, scanner[0])
    click(client, scanner[1])
    result = record_all()
    assert (result.batches, result.clicks, result.machine) == (2, 3, 2)
    assert alert_report.report(alert_id)["clicks"] == {"unique": 1, "total": 1, "machine": 2}
    # Three of one scanner's clicks in batches of two: all recorded, in two batches.
    for url in (scanner[0], scanner[1], scanner[0]):
        click(client, url)
    result = record_all()
    assert (result.batches, result.clicks, queued()) == (2, 3, 0)
    if mode == "person":  # the third, alone in its batch, joins the burst through the rows
        assert result.machine == 3


@pytest.mark.commits
def test_a_batch_is_recorded_once_whatever_happens_between_commit_and_redis(app, ctx, client, smtp):
    send_blast(2, TWO)
    links = links_by_recipient(smtp)
    click(client, links["reader00000@example.org"][0])
    click(client, links["reader00001@example.org"][1])
    r = recording.client()
    base = recording.queue_key()
    # A drainer took the batch from the list and died before writing it.
    lost = f"{base}:batch:lost1"
    r.rpush(lost, *r.lrange(base, 0, -1))
    r.delete(base)
    r.sadd(f"{base}:pending", lost)
    # Another had committed its batch but died before deleting it from Redis.
    done = f"{base}:batch:done1"
    r.rpush(done, *r.lrange(lost, 0, 0))
    r.sadd(f"{base}:pending", done)
    db.session.add(ClickBatch(id="done1"))
    db.session.commit()
    result = record_all()
    assert result.recovered == 2 and result.batches == 1
    assert len(_clicks()) == 2
    assert not r.exists(lost) and not r.exists(done) and not r.smembers(f"{base}:pending")
    assert record_all().clicks == 0 and len(_clicks()) == 2


@pytest.mark.commits
def test_clicks_younger_than_the_hold_back_wait_for_the_next_run(app, ctx, client, smtp):
    send_blast(1, TWO)
    click(client, links_by_recipient(smtp)["reader00000@example.org"][0])
    assert drain.drain(hold=60).clicks == 0
    db.session.rollback()
    assert queued() == 1
    assert record_all().clicks == 1


def test_only_one_drainer_at_a_time(app, ctx):
    r = recording.client()
    r.set(f"{recording.queue_key()}:lock", "someone", ex=30)
    assert drain.drain(hold=-1).busy


@pytest.mark.commits
def test_signature_after_a_click_is_attributed_and_report_matches_rows(app, ctx, client, smtp):
    alert_id = send_blast(3, TWO)
    links = links_by_recipient(smtp)
    click(client, links["reader00000@example.org"][0])
    click(client, links["reader00001@example.org"][1])
    record_all()
    deliveries = dict(db.session.execute(
        sa.select(Subscriber.email, Delivery.id).join(Delivery, Delivery.subscriber_id == Subscriber.id)
    ).all())
    actions = dict(db.session.execute(sa.select(Action.slug, Action.id)).all())
    # As signing records it when the request carries the alert's reference.
    for email, slug in (("reader00000@example.org", TWO[0]), ("reader00002@example.org", TWO[1])):
        db.session.add(Signature(action_id=actions[slug], email=email, email_key=email, name="A",
                                 source="alert", alert_id=alert_id, delivery_id=deliveries[email]))
    db.session.commit()
    data = alert_report.report(alert_id)
    assert data["signatures"] == 2 and data["signatures_after_click"] == 1
    first, second = data["by_action"]
    assert (first["slug"], first["unique_clicks"], first["signatures"], first["signatures_after_click"]) == (
        TWO[0], 1, 1, 1)
    assert (second["unique_clicks"], second["signatures"], second["signatures_after_click"]) == (1, 1, 0)
    # Of the two people who clicked an action, one then signed it (the other signature is a non-clicker's).
    assert first["click_to_sign_rate"] == 1.0 and second["click_to_sign_rate"] == 0.0
    assert (data["people_signed_after_click"], data["clicks"]["unique"]) == (1, 2)
    assert data["click_to_sign_rate"] == 0.5
    # Every figure against the rows.
    assert data["delivered"] == db.session.scalar(
        sa.select(sa.func.count()).select_from(Delivery).where(Delivery.status == "sent")) == 3
    human = [c for c in _clicks() if not c.machine]
    assert data["clicks"]["total"] == len(human)
    assert data["clicks"]["unique"] == len({c.delivery_id for c in human})
    assert data["first_day"]["signatures"] == 2


@pytest.mark.commits
def test_erasure_removes_click_rows_and_keeps_the_alert_totals(app, ctx, client, smtp):
    alert_id = send_blast(2, TWO)
    links = links_by_recipient(smtp)
    click(client, links["reader00000@example.org"][1], method="HEAD")
    record_all()
    click(client, links["reader00000@example.org"][0])
    click(client, links["reader00001@example.org"][0])
    record_all()
    before = alert_report.report(alert_id)
    sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "reader00000@example.org"))
    exported = privacy_steps.export_subscriber_data(sub.id)
    assert [(c["alert_id"], c["action"], c["counted_as"], c["machine_reason"])
            for c in exported["clicks"]] == [
        (alert_id, TWO[1], "machine (scanner or prefetch)", "head"), (alert_id, TWO[0], "person", None)]
    json.dumps(exported)
    assert privacy_steps.erase_subscriber(sub.id, by="subscriber")
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Click)
                             .where(Click.subscriber_id == sub.id)) == 0
    assert len(_clicks()) == 1
    after = alert_report.report(alert_id)
    assert after["clicks"] == before["clicks"] == {"unique": 2, "total": 2, "machine": 1}
    assert after["by_action"] == before["by_action"]


@pytest.mark.commits
def test_clicks_past_retention_become_counts(app, ctx, client, smtp):
    alert_id = send_blast(2, TWO)
    links = links_by_recipient(smtp)
    click(client, links["reader00000@example.org"][0])
    click(client, links["reader00000@example.org"][0], method="HEAD")
    record_all()
    before = alert_report.report(alert_id)
    assert retention.expire() == {"clicks_folded": 0, "batches_forgotten": 0}
    alert = db.session.get(Alert, alert_id)
    alert.started_at = utcnow() - timedelta(days=app.config["CLICK_RETENTION_DAYS"] + 1)
    db.session.commit()
    assert retention.expire()["clicks_folded"] == 2
    assert _clicks() == []
    after = alert_report.report(alert_id)
    assert after["clicks"] == before["clicks"] == {"unique": 1, "total": 1, "machine": 1}


@pytest.mark.commits
def test_report_command_prints_json(app, ctx, client, smtp):
    alert_id = send_blast(2, TWO)
    click(client, links_by_recipient(smtp)["reader00001@example.org"][1], agent=BROWSER_UA)
    record_all()
    runner = app.test_cli_runner()
    out = runner.invoke(args=["alert", "report", str(alert_id), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert {"delivered", "bounced", "complaints", "unsubscribed", "clicks", "by_action"} <= set(data)
    assert data["clicks"] == {"unique": 1, "total": 1, "machine": 0}
    assert [{k: x[k] for k in ("slug", "unique_clicks", "signatures")} for x in data["by_action"]] == [
        {"slug": TWO[0], "unique_clicks": 0, "signatures": 0},
        {"slug": TWO[1], "unique_clicks": 1, "signatures": 0}]
    text = runner.invoke(args=["alert", "report", str(alert_id)])
    assert text.exit_code == 0 and "Delivered" in text.output and TWO[1] in text.output
    missing = runner.invoke(args=["alert", "report", "99999", "--json"])
    assert missing.exit_code != 0 and "no alert 99999" in missing.output


@pytest.mark.commits
def test_no_open_pixel_by_default(app, ctx, client, smtp):
    send_blast(1, TWO)
    html = smtp.handler.messages[0].message.get_body(("html",)).get_content()
    assert "/o/" not in html and "<img" not in html
    assert alert_report.report(db.session.scalar(sa.select(Alert.id)))["opens"] is None


@pytest.mark.commits
def test_opt_in_open_pixel_counts_opens_apart_with_machine_opens(app, ctx, client, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "TRACK_OPENS", "on")
    alert_id = send_blast(3, TWO)
    pixels = {}
    for received in smtp.handler.messages:
        html = received.message.get_body(("html",)).get_content()
        match = re.search(r'<img src="(https://alerts\.example\.org/o/[A-Za-z0-9_-]+\.gif)"', html)
        assert match, html
        pixels[received.rcpt_tos[0]] = match.group(1)
    assert len(set(pixels.values())) == 3
    a, b, c = (pixels[f"reader0000{i}@example.org"] for i in range(3))
    google = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    for url, agent in ((a, BROWSER_UA), (a, BROWSER_UA), (b, BROWSER_UA), (c, "Mozilla/5.0"), (c, google)):
        answer = click(client, url, agent=agent)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/gif"
    # Served, but not counted: a forged token.
    assert click(client, "https://alerts.example.org/o/forged.gif").status_code == 200
    assert queued() == 5
    record_all()
    data = alert_report.report(alert_id)
    assert data["opens"] == {"unique": 2, "total": 3, "machine": 2}
    assert data["clicks"] == {"unique": 0, "total": 0, "machine": 0}  # an open is not a click
    assert _clicks() == []  # opens are never kept per person
    # The staff preview shows no live pixel.
    from alerts.blasts.content import preview

    assert "/o/" not in preview(db.session.get(Alert, alert_id)).html


@pytest.mark.commits
def test_links_in_the_intro_are_tracked_too(app, ctx, client, smtp):
    from tests.helpers import add_confirmed, blasts, save_alert, seed_actions

    seed_actions()
    add_confirmed(1, "reader")
    intro = ("Read [the report](https://example.net/report?id=7&lang=en) first, and "
             "[the law](https://example.net/law). Again: [the report](https://example.net/report?id=7&lang=en).")
    alert = save_alert(None, subject="With links", intro_md=intro, preheader="", action_slugs=[TWO[0]])
    blasts.start_blast(alert.id)
    first, last = db.session.execute(sa.select(sa.func.min(Delivery.id), sa.func.max(Delivery.id))).one()
    blasts.send_batch(alert.id, first, last)
    message = smtp.handler.messages[0].message
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "example.net" not in text and "example.net" not in html
    urls = links_by_recipient(smtp)["reader00000@example.org"]
    # In the text: the intro's three links (two to one page), then the action's.
    assert [urlsplit(u).path.rsplit("/", 1)[1] for u in urls] == ["1", "2", "1", "0"]
    assert click(client, urls[0]).headers["Location"] == "https://example.net/report?id=7&lang=en"
    assert click(client, urls[1], method="HEAD").headers["Location"] == "https://example.net/law"
    record_all()
    data = alert_report.report(alert.id)
    links = [(x["index"], x["action"], x["url"], x["unique_clicks"], x["machine_clicks"])
             for x in data["links"]]
    assert links == [
        (0, TWO[0], f"https://alerts.example.org/actions/{TWO[0]}", 0, 0),
        (1, None, "https://example.net/report?id=7&lang=en", 1, 0),
        (2, None, "https://example.net/law", 0, 1)]
    assert data["clicks"] == {"unique": 1, "total": 1, "machine": 1}
    assert data["by_action"][0]["unique_clicks"] == 0


@pytest.mark.parametrize("mode", ["person", "aggregate", "off"])
def test_a_messages_links_are_what_wrapping_its_action_urls_makes(app, ctx, mode, monkeypatch):
    """The blast's per-recipient links (one pass over a plan made once per factory) are exactly
    what `LinkWrapper.wrap` makes of the destinations: hosted actions with their reference, an
    external action (with a query string of its own), the intro's links, a test send."""
    from alerts.blasts.content import MessageFactory
    from alerts.models import Action, Alert
    from tests.helpers import add_confirmed, blasts, save_alert, seed_actions

    monkeypatch.setitem(app.config, "TRACK_CLICKS", mode)
    seed_actions()
    external = db.session.scalar(sa.select(Action).where(Action.slug == TWO[1]))
    external.url = "https://example.net/pledge?campaign=kids"
    add_confirmed(3, "reader")
    intro = "Read [the report](https://example.net/report?id=7&lang=en) and [the law](https://example.net/law)."
    alert = save_alert(None, subject="Links", intro_md=intro, preheader="", action_slugs=TWO)
    blasts.start_blast(alert.id)
    db.session.commit()
    factory = MessageFactory.for_alert(db.session.get(Alert, alert.id))
    assert (factory.tracker is None) == (mode == "off")
    rows = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id)).all()
    for delivery_id, subscriber_id in [*rows, (None, None)]:
        expected = {**factory.action_urls(delivery_id, subscriber_id), **factory.intro_urls}
        if factory.tracker is not None:
            expected = factory.tracker.wrap(expected, delivery_id)
        assert factory.links(delivery_id) == expected
    hosted = factory.links(rows[0][0])["action_0"]
    assert "?r=" in hosted and ("/r/" in hosted) == (mode != "off")


def test_taking_batches_with_hold_backs_loses_and_doubles_nothing(app, ctx):
    """A bounded fuzz of the recorder's take script: random clicks (a few recipients, times a
    second or two apart, some records unreadable), taken at random cut times and batch sizes
    until the list is empty. Every record comes out exactly once, and a run always ends."""
    import random

    r = recording.client()
    queue = recording.queue_key()
    take = r.register_script(drain._TAKE)
    for seed in range(40):
        rng = random.Random(seed)
        at, records = 1000.0, []
        for n in range(rng.randint(1, 60)):
            at += rng.choice([0.0, 0.1, 0.5, 1.5, 3.0])
            records.append("garbage" if rng.random() < 0.05 else
                           recording.encode(at, 1, rng.randint(1, 4), rng.randint(0, 2), "") + f"#{n}")
        r.delete(queue)
        r.rpush(queue, *records)
        taken: list[str] = []

        def take_one(step: int, size: int, cutoff: float, taken: list[str] = taken) -> int:
            key, pending = f"{queue}:fuzz:{step}", f"{queue}:fuzz:pending"
            count = take(keys=[queue, key, pending], args=[size, f"{cutoff:.3f}", 2, 5])
            got = [item.decode() for item in r.lrange(key, 0, -1)]
            assert len(got) == count <= size
            taken.extend(got)
            r.delete(key, pending)
            return count

        cutoff = 1000.0
        for step in range(20):  # runs at random times, batches of random sizes
            cutoff += rng.choice([0.0, 0.5, 2.0, 5.0])
            take_one(step, rng.randint(1, 8), cutoff)
        size = rng.randint(1, 8)
        for step in range(20, 200):  # then every click old: each batch must take something
            if not r.llen(queue):
                break
            assert take_one(step, size, 10**9) > 0, f"seed {seed}: a batch of {size} took nothing"
        assert not r.llen(queue), f"seed {seed}: the list never emptied"
        assert sorted(taken) == sorted(records), f"seed {seed}"
