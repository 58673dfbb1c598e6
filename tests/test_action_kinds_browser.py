"""In a real browser, at 1280 and 390 px with no axe-core violation: the staff action form showing
the fields of the kind chosen, a letter's target mistake named at its field, the placeholders
flagged on the staff pages, and the Action Center's cards naming each action's kind."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts.actions.catalog import ECDFA, LGBTQ_YOUTH
from alerts.extensions import db
from alerts.models import Action
from alerts.permissions import Role
from tests.helpers import create_staff, seed_actions
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.test_accessibility_browser import _axe_source, axe_violations

pytestmark = pytest.mark.slow

EMAIL = "organizer@example.org"
PASSWORD = "a long staff password"


def _fits(page) -> None:
    scroll_width, inner_width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, f"the page scrolls sideways at {inner_width}px"


def _ids(app) -> tuple[int, int]:
    with app.app_context():
        seed_actions()
        create_staff(EMAIL, PASSWORD, role=Role.ADMIN)
        db.session.commit()
        ids = {a.title: a.id for a in db.session.scalars(sa.select(Action))}
        return ids[ECDFA], ids[LGBTQ_YOUTH]


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_the_action_form_shows_each_kinds_fields_and_names_mistakes(app, live_server, browser, shots, phone):
    source = _axe_source()
    letter_id, call_id = _ids(app)
    width = "390" if phone else "1280"
    page = browsers.new_page(browser, phone=phone)
    staff_log_in(page, live_server.url, EMAIL, PASSWORD)

    page.goto(live_server.url + "/staff/actions/new")
    kind = page.get_by_label("Kind", exact=True)
    subject = page.get_by_label("Letter subject", exact=True)
    script = page.get_by_label("Call script", exact=True)
    targets = page.get_by_label("Targets, one per line")
    # A petition: neither a letter's nor a call's fields.
    expect(subject).to_be_hidden()
    expect(script).to_be_hidden()
    expect(targets).to_be_hidden()
    kind.select_option("letter")
    expect(subject).to_be_visible()
    expect(targets).to_be_visible()
    expect(script).to_be_hidden()
    expect(page.get_by_label("Pledge text (pledges)")).to_be_hidden()
    _fits(page)
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"action-form-letter-{width}.png"), full_page=True)
    kind.select_option("call")
    expect(script).to_be_visible()
    expect(subject).to_be_hidden()
    expect(targets).to_be_visible()

    # A letter with a target written wrong: the message at the field, in view, nothing lost.
    kind.select_option("letter")
    page.get_by_label("Title", exact=True).fill("Write to the Governor")
    page.get_by_label("Call to action", exact=True).fill("Send the Letter")
    subject.fill("Fund youth services")
    page.get_by_label("Letter text", exact=True).fill("Dear Governor,\n\nPlease fund them.")
    targets.fill("Kathy Hochul, Governor <governor@example.org>\nThe State Senate")
    page.get_by_role("button", name="Create action").click()
    error = page.locator("#targets-error")
    expect(error).to_contain_text("Line 2: a letter's target is written")
    expect(error).to_be_in_viewport()
    expect(targets).to_be_focused()
    expect(targets).to_have_value("Kathy Hochul, Governor <governor@example.org>\nThe State Senate")
    expect(subject).to_have_value("Fund youth services")
    expect(page.get_by_label("Kind", exact=True)).to_have_value("letter")
    _fits(page)
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"action-form-error-{width}.png"))
    targets.fill("Kathy Hochul, Governor <governor@example.org>\n"
                 "The State Senate, Albany <senate@example.org> [placeholder]")
    page.get_by_role("button", name="Create action").click()
    expect(page.get_by_text("Saved “Write to the Governor”.")).to_be_visible()
    row = page.locator("tr", has=page.get_by_role("link", name="Write to the Governor", exact=True))
    expect(row.locator(".badge-placeholder")).to_have_text("Placeholder target: replace before sending")

    # The seeded call, as staff edit it: its script, its placeholder switchboard flagged.
    page.goto(f"{live_server.url}/staff/actions/{call_id}/edit")
    expect(page.get_by_label("Call script", exact=True)).to_contain_text("Equality Act")
    flagged = page.locator("#targets-fields .badge-placeholder")
    expect(flagged).to_have_text("Placeholder: replace before sending")
    expect(page.get_by_label("Letter subject", exact=True)).to_be_hidden()
    _fits(page)
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"action-form-call-{width}.png"), full_page=True)

    # The seeded letter's staff page: its targets, and the warning that they are placeholders.
    page.goto(f"{live_server.url}/staff/actions/{letter_id}/signatures")
    expect(page.locator("#targets .flash-warning")).to_contain_text("2 of 2 targets are placeholders.")
    expect(page.locator("#targets .badge-placeholder")).to_have_count(2)
    _fits(page)
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"action-targets-{width}.png"), full_page=True)
    page.context.close()


@pytest.mark.parametrize("phone", [False, True], ids=["1280", "390"])
def test_the_action_center_names_each_actions_kind(app, live_server, browser, shots, phone):
    source = _axe_source()
    _ids(app)
    width = "390" if phone else "1280"
    page = browsers.new_page(browser, phone=phone)
    page.goto(live_server.url + "/")
    call = page.locator("article.card", has=page.get_by_role("heading", name=LGBTQ_YOUTH))
    letter = page.locator("article.card", has=page.get_by_role("heading", name=ECDFA))
    expect(call.locator(".kind")).to_have_text("Call")
    expect(call.get_by_role("link", name="Call Your Senators")).to_be_visible()
    expect(letter.locator(".kind")).to_have_text("Letter")
    expect(letter.get_by_role("link", name="Send the Letter")).to_be_visible()
    expect(page.locator("article.card .kind")).to_have_count(7)
    _fits(page)
    assert axe_violations(page, source) == []
    page.screenshot(path=str(shots / f"action-center-kinds-{width}.png"), full_page=True)
    page.context.close()
