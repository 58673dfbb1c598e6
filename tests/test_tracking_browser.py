"""Click tracking end to end: a blast by a real worker, clicks from Chromium, scanners and HEAD,
the web app gone before the beat task records them, then the staff pages (screenshots)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Action, Click, ConsentRecord, Delivery, Signature, Subscriber, utcnow
from alerts.reports import alert_report
from tests.helpers import add_confirmed, create_staff, make_alert
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.plugins.parts import LiveServer
from tests.report_helpers import month_of_activity
from tests.tracking_helpers import BROWSER_UA, reset

pytestmark = pytest.mark.slow

SLUGS = ["detention-is-no-place-for-a-child", "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island",
         "sign-the-healthy-kids-healthy-minds-pledge"]
STAFF, PASSWORD = "reports@example.org", "a long reports password"



def _wait_for_clicks(n: int, timeout: float = 30) -> list[Click]:
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        rows = list(db.session.scalars(sa.select(Click).order_by(Click.id)))
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.3)



def _no_horizontal_scroll(page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, (width, inner)


def _phone_screens(page, shots: Path, name: str) -> None:
    """The long phone page as screen-sized pieces too, to look at them at their real size."""
    height = page.evaluate("document.documentElement.scrollHeight")
    for n, top in enumerate(range(0, height, 800), start=1):
        clip = {"x": 0, "y": top, "width": 390, "height": min(844, height - top)}
        page.screenshot(path=str(shots / name.replace(".png", f"-part{n}.png")), full_page=True, clip=clip)


def test_browser_clicks_are_counted_and_machines_kept_apart(
        app, smtp, workers, browser, monkeypatch, shots):
    web = LiveServer(app).__enter__()
    # The web app and the workers share the workers' Redis and queue name (clicks go there).
    monkeypatch.setitem(app.config, "BASE_URL", web.url)
    monkeypatch.setitem(app.config, "REDIS_URL", workers.redis.url)
    monkeypatch.setitem(app.config, "CELERY_TASK_QUEUE", workers.name)
    monkeypatch.delitem(app.extensions, "alerts.click_redis", raising=False)
    with app.app_context():
        reset(app)
        month_of_activity()
        emails = add_confirmed(5, "person")
        first = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == emails[0]))
        first.source = "web-form"
        first.confirmed_at = utcnow() - timedelta(days=3)
        first.created_at = first.confirmed_at - timedelta(minutes=4)
        first.consents.extend([
            ConsentRecord(event="signup", at=first.confirmed_at - timedelta(minutes=4), source="web-form",
                          ip="198.51.100.23", consent_text_version="2026-11-advocate-for-kids-v1"),
            ConsentRecord(event="confirm", at=first.confirmed_at, source="web-form", ip="198.51.100.23")])
        db.session.commit()
        alert_id = make_alert("Close Rikers: your signature today", SLUGS)
        create_staff(STAFF, PASSWORD)
    # A scanner opens every link at once; on a loaded machine "at once" can take seconds.
    workers.start(BASE_URL=web.url, CLICK_FLUSH_SECONDS="1", CLICK_HOLD_SECONDS="1", CLICK_BURST_SECONDS="15")
    with app.app_context():
        confirmed = db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)
                                      .where(Subscriber.status == "confirmed"))
        assert workers.launch(alert_id) == confirmed
    messages = {m.rcpt_tos[0]: m.message for m in smtp.handler.wait_for(confirmed, timeout=60)}
    # The buttons of each message (the text part carries the same links).
    links = {e: [u for u in messages[e].get_body(("html",)).get_content().split('"')
                 if u.startswith(web.url + "/r/")] for e in emails}
    assert all(len(v) == 3 for v in links.values()), links
    text = messages[emails[0]].get_body(("plain",)).get_content()
    assert all(u in text for u in links[emails[0]])

    # A person reads the message in a browser and presses two buttons, a minute apart.
    person = browser.new_context(user_agent=BROWSER_UA, viewport=browsers.DESKTOP)
    page = person.new_page()
    page.set_content(messages[emails[0]].get_body(("html",)).get_content())
    page.get_by_role("link", name="Sign the Petition").nth(1).click()
    expect(page.get_by_role("heading", name="Call on Mayor Adams to Follow the Law and Close Rikers Island")
           ).to_be_visible()
    page.screenshot(path=str(shots / "landing-after-tracked-click-1280.png"))
    # A second person, on a phone.
    phone = browser.new_context(user_agent=BROWSER_UA.replace("X11; Linux x86_64", "Linux; Android 14"),
                                viewport=browsers.PHONE, is_mobile=True, has_touch=True)
    phone_page = phone.new_page()
    phone_page.set_content(messages[emails[1]].get_body(("html",)).get_content())
    phone_page.get_by_role("link", name="Sign the Pledge").click()
    pledge = phone_page.get_by_role("heading", name="Sign the Healthy Kids Healthy Minds Pledge")
    expect(pledge).to_be_visible()
    # A link checker (HEAD), and a mail scanner opening every link of a message at once.
    api = person.request
    assert api.head(links[emails[2]][0], max_redirects=0).status == 302
    for url in links[emails[3]]:
        assert api.get(url, max_redirects=0).status == 302
    # A tampered link is a 404 and records nothing.
    good = links[emails[4]][0].split("?")[0]  # (the signing reference's query left off)
    bad = good[:-3] + ("x" if good[-3] != "x" else "y") + good[-2:]
    assert page.goto(bad).status == 404
    phone.close()

    # The web app goes away before anything is recorded: the clicks wait in Redis.
    web.__exit__(None, None, None)
    with app.app_context():
        rows = _wait_for_clicks(6)
        assert len(rows) == 6
        subs = dict(db.session.execute(sa.select(Subscriber.id, Subscriber.email)).all())
        human = sorted((subs[r.subscriber_id], r.link_index) for r in rows if not r.machine)
        machine = sorted((subs[r.subscriber_id], r.link_index) for r in rows if r.machine)
        assert human == [(emails[0], 1), (emails[1], 2)]
        assert machine == [(emails[2], 0), (emails[3], 0), (emails[3], 1), (emails[3], 2)]
        # The first person signs the petition they clicked, from the alert's link (as signing records it).
        action = db.session.scalar(sa.select(Action).where(Action.slug == SLUGS[1]))
        delivery = db.session.scalar(
            sa.select(Delivery).join(Subscriber).where(Subscriber.email == emails[0]))
        db.session.add(Signature(action_id=action.id, subscriber_id=delivery.subscriber_id, email=emails[0],
                                 email_key=emails[0], name="P", source="alert", alert_id=alert_id,
                                 delivery_id=delivery.id))
        db.session.commit()
        data = alert_report.report(alert_id)
        assert data["delivered"] == confirmed
        assert data["clicks"] == {"unique": 2, "total": 2, "machine": 4}
        assert [(a["slug"], a["unique_clicks"], a["signatures"], a["signatures_after_click"])
                for a in data["by_action"]] == [(SLUGS[0], 0, 0, 0), (SLUGS[1], 1, 1, 1), (SLUGS[2], 1, 0, 0)]
        first_person = delivery.subscriber_id
        scanner = next(k for k, v in subs.items() if v == emails[3])

    # Staff read it, on a desktop and on a phone.
    with LiveServer(app) as again:
        staff = browser.new_context(viewport=browsers.DESKTOP)
        page = staff.new_page()
        staff_log_in(page, again.url, STAFF, PASSWORD)
        expect(page.locator("svg.chart")).to_have_count(3)
        expect(page.get_by_role("heading", name="Did the alerts move people?")).to_be_visible()
        page.screenshot(path=str(shots / "dashboard-1280.png"), full_page=True)
        page.goto(f"{again.url}/staff/alerts/{alert_id}/report")
        expect(page.get_by_role("heading", name="Which action did they pick?")).to_be_visible()
        page.screenshot(path=str(shots / "alert-report-1280.png"), full_page=True)
        page.goto(f"{again.url}/staff/subscribers/{first_person}")
        expect(page.get_by_text("Signed “Call on Mayor Adams")).to_be_visible()
        page.screenshot(path=str(shots / "subscriber-history-1280.png"), full_page=True)
        page.goto(f"{again.url}/staff/subscribers/{scanner}")  # each machine click says why
        expect(page.get_by_text("(several links opened at once)")).to_have_count(3)
        page.screenshot(path=str(shots / "scanner-history-1280.png"), full_page=True)
        cookies = staff.cookies()
        staff.close()
        mobile = browser.new_context(viewport=browsers.PHONE, is_mobile=True, has_touch=True,
                                     device_scale_factor=2)
        mobile.add_cookies(cookies)
        page = mobile.new_page()
        for path, name in (("/staff/", "dashboard-390.png"),
                           (f"/staff/alerts/{alert_id}/report", "alert-report-390.png"),
                           (f"/staff/subscribers/{first_person}", "subscriber-history-390.png"),
                           (f"/staff/subscribers/{scanner}", "scanner-history-390.png")):
            page.goto(again.url + path)
            if path == "/staff/":
                page.locator("svg.chart").first.wait_for()  # the dashboard's charts come after the page
            _no_horizontal_scroll(page)
            page.screenshot(path=str(shots / name), full_page=True)
            _phone_screens(page, shots, name)
        box = page.goto(again.url + "/staff/") and page.locator("svg.chart").first.bounding_box()
        assert box["width"] >= 300  # a chart spans the phone's column
        mobile.close()
    person.close()
