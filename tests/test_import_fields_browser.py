"""The import report in a real browser: which column went to which field, and the columns left
out, named, at a desktop and a phone width, with no WCAG 2.1 A/AA violation axe-core finds."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from alerts.extensions import db
from alerts.subscribers import fields
from tests.helpers import create_staff
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

STAFF, PASSWORD = "importer@example.org", "a long importing password"


def test_the_import_report_shows_the_columns_and_names_those_left_out(app, live_server, browser_page, shots):
    source = _axe_source()
    with app.app_context():
        create_staff(STAFF, PASSWORD)
        fields.define("school_district", "School district", "choice", ["District 1", "District 2"])
        db.session.commit()
    page = browser_page
    staff_log_in(page, live_server.url, STAFF, PASSWORD)
    page.goto(live_server.url + "/staff/subscribers/import")
    csv = shots / "people.csv"
    csv.write_text("Email,First Name,Last Name,ZIP,Phone 2,District,\n"
                   "ana@example.org,Ana,Díaz,10001,555-0101,District 1,x\n"
                   "bo@example.org,Bo,Lee,10002,,District 7,\n", encoding="utf-8")
    page.locator("input[type=file]").set_input_files(str(csv))
    page.locator("input[name=consent]").first.check()
    page.get_by_label("Source of consent").fill("Street fair, sign-up sheet")
    page.get_by_label("Other columns").fill("school_district=District")
    page.locator("form.form-box button[type=submit]").click()
    expect(page.get_by_role("heading", name="Checked people.csv: nothing changed yet")).to_be_visible()
    columns = page.locator("#import-columns")
    expect(columns).to_contain_text("ZIP")
    expect(columns).to_contain_text("Postal code")
    expect(columns).to_contain_text("School district")
    left_out = page.locator("#columns-not-imported")
    expect(left_out).to_contain_text("column 'Phone 2' will not be imported")
    expect(left_out).to_contain_text("column 7 (no header) will not be imported")
    expect(page.get_by_role("cell", name="invalid-field")).to_be_visible()
    failures = []
    for viewport in (browsers.DESKTOP, browsers.PHONE):
        page.set_viewport_size(viewport)
        page.screenshot(path=str(shots / f"import-report-{viewport['width']}.png"), full_page=True)
        failures += axe_violations(page, source)
    assert failures == []
