"""In a real browser: the field settings page and a subscriber's page with fields, at a desktop
and a phone width, with no axe-core violation; a field added and a profile edited through them."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.models import Subscriber
from alerts.permissions import Role
from alerts.subscribers import fields
from tests.helpers import create_staff
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

EMAIL = "admin@example.org"
PASSWORD = "a long staff password"


def _seed(app) -> int:
    with app.app_context():
        fields.define("region", "Borough", "choice", ["Bronx", "Brooklyn", "Manhattan", "Queens",
                                                     "Staten Island"], on_signup=True)
        fields.define("skills", "How can you help?", "choices", ["Phone banking", "Driving", "Translation"])
        fields.define("volunteer", "Wants to volunteer", "checkbox")
        fields.define("school_district", "School district", "number")
        fields.define("joined_campaign", "Joined the campaign on", "date")
        fields.change("last_name", label="Last name", required=False, on_signup=True)
        sub = Subscriber(email="ana.maria.perez-gonzalez@example.org", status="confirmed",
                         first_name="Ana María", last_name="Pérez González", postal_code="10452",
                         phone="+12125550100", language="es", source="Pride march 2026")
        db.session.add(sub)
        db.session.flush()
        fields.set_values(sub.id, {"region": ["Bronx"], "skills": ["Driving", "Translation"],
                                   "volunteer": ["yes"], "school_district": ["9"]})
        create_staff(EMAIL, PASSWORD, role=Role.ADMIN)
        db.session.commit()
        return sub.id


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_field_settings_and_subscriber_page_look_right(app, live_server, browser, shots, phone):
    source = _axe_source()
    sub_id = _seed(app)
    width = "390" if phone else "1280"
    page = browsers.new_page(browser, phone=phone)
    staff_log_in(page, live_server.url, EMAIL, PASSWORD)

    page.goto(live_server.url + "/staff/fields")
    expect(page.get_by_role("heading", name="Fields", exact=True)).to_be_visible()
    rows = page.locator(".fields-table tbody tr")
    expect(rows).to_have_count(9)
    expect(rows.nth(0)).to_contain_text("First name")
    expect(rows.nth(4)).to_contain_text("Borough")
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"fields-{width}.png"), full_page=True)

    # A field with a mistake: the message next to the input, what was typed kept.
    page.get_by_label("Label").fill("T-shirt size")
    page.get_by_label("Key").fill("T-shirt")
    page.get_by_label("Kind").select_option(label="One choice")
    page.get_by_role("button", name="Add the field").click()
    expect(page.locator("#key-error")).to_contain_text("lower-case letter")
    expect(page.locator("#choices-error")).to_contain_text("at least one choice")
    expect(page.get_by_label("Label")).to_have_value("T-shirt size")
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"fields-error-{width}.png"), full_page=True)
    page.get_by_label("Key").fill("tshirt")
    page.get_by_label("Choices").fill("S\nM\nL")
    page.get_by_role("button", name="Add the field").click()
    expect(page.get_by_text("Field “T-shirt size” added.")).to_be_visible()
    expect(rows).to_have_count(10)
    page.get_by_role("link", name="Edit Borough").click()
    expect(page.get_by_label("Choices")).to_have_value("Bronx\nBrooklyn\nManhattan\nQueens\nStaten Island")
    page.get_by_label("Choices").fill("Bronx\nBrooklyn\nBrooklyn")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#choices-error")).to_contain_text("listed twice")
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"field-edit-error-{width}.png"), full_page=True)

    page.goto(f"{live_server.url}/staff/subscribers/{sub_id}")
    expect(page.locator(".profile")).to_contain_text("(212) 555-0100")
    expect(page.locator(".profile")).to_contain_text("Driving; Translation")
    page.locator("summary", has_text="Edit the profile").click()
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"subscriber-fields-{width}.png"), full_page=True)
    page.get_by_label("Postal code").fill("10452!")
    page.get_by_label("School district").fill("nine")
    page.get_by_role("button", name="Save the profile").click()
    expect(page.locator("#p-postal_code-error")).to_be_visible()
    expect(page.locator("#p-school_district-error")).to_contain_text("is a number")
    expect(page.get_by_label("School district")).to_have_value("nine")
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"subscriber-fields-error-{width}.png"), full_page=True)
    page.get_by_label("Postal code").fill("10451")
    page.get_by_label("School district").fill("10")
    page.get_by_label("T-shirt size").select_option("M")
    page.get_by_role("button", name="Save the profile").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.locator(".profile")).to_contain_text("10451")
    with app.app_context():
        assert fields.values_for([sub_id])[sub_id]["tshirt"] == ["M"]

    page.goto(live_server.url + "/staff/subscribers")
    expect(page.get_by_text("Ana María Pérez González")).to_be_visible()
    page.context.close()


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_compose_counts_an_audience_by_field_live(app, live_server, browser, shots, phone):
    from tests.helpers import add_confirmed, seed_actions

    source = _axe_source()
    _seed(app)
    with app.app_context():
        seed_actions()
        for n, email in enumerate(add_confirmed(10)):
            sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == email))
            sub.postal_code = "1045" + str(n) if n < 4 else "11201"
            sub.first_name = "Reader" if n % 2 else None
            fields.set_values(sub.id, {"region": ["Bronx" if n < 6 else "Queens"]})
        db.session.commit()
    page = browsers.new_page(browser, phone=phone)
    staff_log_in(page, live_server.url, EMAIL, PASSWORD)
    page.goto(live_server.url + "/staff/alerts/new")
    count = page.locator(".audience-count")
    expect(count).to_contain_text("11 people: everyone confirmed")
    page.locator("summary", has_text="By what they told us").click()
    page.get_by_label("Postal code starts with").fill("1045, 112")
    expect(count).to_contain_text("11 people: everyone confirmed, whose postal code starts with 1045 or 112")
    page.get_by_label("First name").select_option(label="Has a first name")
    expect(count).to_contain_text("6 people")
    page.locator("#af-region-1").check()  # Bronx
    expect(count).to_contain_text("4 people: everyone confirmed, whose postal code starts with 1045 or 112, "
                                  "whose first name is known, whose “Borough” is Bronx")
    page.get_by_label("Ticked (Wants to volunteer)").check()
    expect(count).to_contain_text("1 person")
    assert axe_violations(page, source) == []
    page.locator("#by-field").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / f"compose-by-field-{'390' if phone else '1280'}.png"))
    page.context.close()
