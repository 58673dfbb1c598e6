"""Journeys in a real browser: build one, add its email, read the timeline and its figures;
at 1280 and 390 px, with no axe violations, screenshots saved."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts import journeys
from alerts.extensions import db
from alerts.models import Action, Click, Delivery, DeliveryStatus, Journey, Signature, Subscriber
from tests.helpers import add_confirmed, create_staff, seed_actions
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "journeys@example.org", "a long staff password"
T0 = datetime.now(UTC) - timedelta(days=10)


def _figures() -> int:
    """The default journey with people along it: sent, clicked, signed, one unsubscribed."""
    journey = journeys.ensure_default()
    db.session.commit()
    emails = add_confirmed(40, "journeyer")
    ids = list(db.session.scalars(sa.select(Subscriber.id).where(Subscriber.email.in_(emails))))
    journeys.enter("confirmed", ids, now=T0)
    db.session.commit()

    def beat(days: int) -> None:
        journeys.run_due(T0 + timedelta(days=days))
        db.session.execute(sa.update(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)
                           .values(status=DeliveryStatus.SENT, sent_at=T0 + timedelta(days=days)))
        db.session.commit()

    beat(0)
    beat(2)
    step2 = journey.steps[1]
    action = db.session.scalars(sa.select(Action).order_by(Action.position)).first()
    rows = db.session.execute(sa.select(Delivery.id, Delivery.subscriber_id, Subscriber.email)
                              .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                              .where(Delivery.alert_id == step2.alert_id).order_by(Delivery.id)).all()
    for row in rows[:14]:
        db.session.add(Click(alert_id=step2.alert_id, delivery_id=row.id, subscriber_id=row.subscriber_id,
                             link_index=0, action_id=action.id))
    for row in rows[:6]:
        db.session.add(Signature(action_id=action.id, email=row.email, email_key=row.email, name="S",
                                 source="alert", alert_id=step2.alert_id, delivery_id=row.id,
                                 confirmed_at=T0 + timedelta(days=3)))
    db.session.commit()
    beat(7)  # step 3 asks for the first action: its signers skip it
    return journey.id


def _check(page, source: str, failures: list[str], name: str) -> None:
    for line in axe_violations(page, source):
        failures.append(f"{name} at {page.viewport_size['width']} px: {line}")
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{name} scrolls sideways at {inner} px"


def test_staff_build_a_journey_and_read_which_step_moved_people(app, live_server, browser, shots):
    source = _axe_source()
    with app.app_context():
        seed_actions()
        create_staff(STAFF, PASSWORD)
        default_id = _figures()
        first = db.session.scalars(sa.select(Action).order_by(Action.position)).first()
        first_title, first_slug = first.title, first.slug
    failures: list[str] = []
    base = live_server.url
    page = browsers.new_page(browser)
    try:
        staff_log_in(page, base, STAFF, PASSWORD)
        page.get_by_role("link", name="Journeys", exact=True).click()
        expect(page.get_by_role("heading", name="Journeys")).to_be_visible()
        expect(page.get_by_role("link", name="New subscribers")).to_be_visible()
        # A signer of one action invited to the next, built in a minute.
        page.get_by_role("link", name="New journey").click()
        page.get_by_label("Name").fill("After the first signature")
        page.get_by_label("Who enters it").select_option(f"signed:{first_slug}")
        page.get_by_role("button", name="Create the journey").click()
        expect(page.get_by_role("heading", name="New email step")).to_be_visible()
        page.get_by_label("Wait").fill("1")
        page.get_by_label("Unit").select_option("days")
        page.get_by_label("Subject", exact=True).fill("Thank you, {first_name|friend}: one more?")
        page.get_by_label("Text (Markdown)").fill("You signed **" + first_title + "**. This one is next:")
        page.get_by_label("Subject in Spanish").fill("Gracias: ¿una más?")
        page.get_by_role("button", name="Save the step").click()
        expect(page.get_by_text("Step saved.")).to_be_visible()
        preview = page.frame_locator("iframe[name=preview-frame]")
        expect(preview.get_by_text("This one is next")).to_be_visible()
        _check(page, source, failures, "step editor")
        page.screenshot(path=shots / "journey-step-1280.png", full_page=True)
        page.get_by_role("link", name="After the first signature").click()
        expect(page.locator(".timeline strong")).to_have_text("1. Thank you, {first_name|friend}: one more?")
        page.get_by_role("button", name="Pause").click()
        expect(page.get_by_text("Journey paused")).to_be_visible()
        page.get_by_role("button", name="Resume").click()
        expect(page.get_by_text("Journey resumed")).to_be_visible()
        with app.app_context():
            built = db.session.scalars(
                sa.select(Journey).where(Journey.name == "After the first signature")).one()
            assert built.trigger == f"signed:{first_slug}" and not built.paused
            assert [s.after_minutes for s in built.steps] == [24 * 60]
            built_id = built.id
        page.goto(f"{base}/staff/journeys")
        _check(page, source, failures, "journeys")
        page.screenshot(path=shots / "journeys-1280.png", full_page=True)
        page.goto(f"{base}/staff/journeys/{default_id}")
        expect(page.get_by_role("img", name=re.compile("Per step of New subscribers"))).to_be_visible()
        figures = page.locator("table").last
        expect(figures.get_by_role("row").nth(1)).to_contain_text("40")  # step 2: sent to all 40
        expect(figures.get_by_role("row").nth(1)).to_contain_text("14")  # clicked
        expect(figures.get_by_role("row").nth(2)).to_contain_text("34")  # step 3: not to the 6 signers
        _check(page, source, failures, "journey")
        page.screenshot(path=shots / "journey-1280.png", full_page=True)
    finally:
        page.context.close()
    phone = browsers.new_page(browser, phone=True)
    try:
        staff_log_in(phone, base, STAFF, PASSWORD)
        for path, name in ((f"/staff/journeys/{default_id}", "journey"), ("/staff/journeys", "journeys"),
                           (f"/staff/journeys/{built_id}", "journey-built"),
                           ("/staff/journeys/new", "journey-new")):
            phone.goto(base + path)
            _check(phone, source, failures, name)
            phone.screenshot(path=shots / f"{name}-390.png", full_page=True)
        with app.app_context():
            step_id = db.session.scalars(sa.select(Journey).where(Journey.id == built_id)).one().steps[0].id
        phone.goto(f"{base}/staff/journeys/{built_id}/steps/{step_id}")
        _check(phone, source, failures, "step editor")
        phone.screenshot(path=shots / "journey-step-390.png", full_page=True)
    finally:
        phone.context.close()
    assert not failures, "\n".join(failures)
