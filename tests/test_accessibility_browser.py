"""Every page, public and staff, has no WCAG 2.1 A/AA violation that axe-core finds, at a
desktop and a phone width.

The walk goes through the app's URL map: every GET route is either visited (its parameters
filled from seeded data) or named in NOT_PAGES, so a page added later is checked, or the test
says which route it does not know how to visit. Pages reached by a form (the answer to a
signup, a signature, a confirmation, an unsubscribe, an erasure, an import) are visited by
submitting the form, as a person would.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from alerts import accounts
from alerts.actions.signing import make_confirm_token as make_signature_token
from alerts.extensions import db
from alerts.models import Action, BounceEvent, Delivery, Signature, Subscriber, utcnow
from alerts.permissions import Role
from tests import webhook_helpers
from tests.helpers import (
    bounces,
    confirm_token_for,
    create_staff,
    make_alert,
    unsubscribe_token_for,
)
from tests.plugins import browsers
from tests.plugins.browsers import staff_log_in
from tests.report_helpers import month_of_activity
from tests.tracking_helpers import TWO, click, links_by_recipient, record_all, send_blast

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
AXE_JS = ROOT / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
WIDTHS = (browsers.DESKTOP, browsers.PHONE)
STAFF, PASSWORD = "a11y@example.org", "a long accessible password"

# GET routes that answer with something other than a page: files, JSON, CSV, redirects, parts
# of a page (the dashboard's charts part is checked inside the dashboard, an alert's HTML
# preview inside the alert's page, in its frame).
NOT_PAGES = {
    "static", "public.favicon", "public.healthz", "redirects.open_pixel", "redirects.follow",
    "public.action_image",  # an action's share image (its page's og:image), not a page
    "privacy.data", "staff.action_signatures_csv", "staff.action_calls_csv",
    "staff.alert_preview_text", "staff.alert_recipients",
    "staff.alert_status", "staff.alert_audience", "staff.dashboard_charts_part",
    "staff.data_subscriber_json", "staff.data_export", "staff.alert_preview_html", "staff.audit_trail_csv",
    "embeds.embed_js",  # a script, not a page (the embed pages it frames are walked)
    # The REST API answers JSON (its reference page, api_pages.docs, is walked).
    "api-docs.openapi_json", "api.list_subscribers", "api.get_subscriber", "api.list_actions",
    "api.get_action", "api.list_signatures", "api.list_alerts", "api.alert_status", "api.alert_report_view",
}


def _axe_source() -> str:
    if not AXE_JS.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs axe-core at {AXE_JS} (scripts/setup --test installs it with npm)")
        pytest.skip(f"needs axe-core at {AXE_JS}: run scripts/setup --test (npm install axe-core)")
    return AXE_JS.read_text(encoding="utf-8")


def axe_violations(page, source: str) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as shown now, one line per element."""
    # Evaluated, not added as a script tag: the pages' CSP allows no inline script.
    for frame in page.frames:  # the staff previews' frames too: the email as it is shown
        if not frame.evaluate("typeof window.axe !== 'undefined'"):
            frame.evaluate(source)
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        TAGS,
    )
    lines = []
    for v in result["violations"]:
        for node in v["nodes"]:
            summary = " ".join(node.get("failureSummary", "").split())
            lines.append(f"{v['id']} {node['target']}: {summary}")
    return lines


class Walk:
    """Checks each page it is shown at every width and keeps what failed."""

    def __init__(self, page, source: str, base: str) -> None:
        self.page, self.source, self.base = page, source, base
        self.failures: list[str] = []
        self.seen: list[str] = []

    def check(self, name: str) -> None:
        page = self.page
        page.wait_for_load_state("load")
        for viewport in WIDTHS:
            page.set_viewport_size(viewport)
            for line in axe_violations(page, self.source):
                self.failures.append(f"{name} ({page.url}) at {viewport['width']} px: {line}")
        page.set_viewport_size(browsers.DESKTOP)
        self.seen.append(name)

    def visit(self, path: str, name: str | None = None) -> None:
        response = self.page.goto(self.base + path)
        kind = response.headers.get("content-type", "") if response else "no response"
        assert "text/html" in kind, f"{path} answers {kind}: not a page? (add its endpoint to NOT_PAGES)"
        self.check(name or path)


def test_every_page_has_no_axe_violations(app, live_server, celery_worker, smtp, browser, monkeypatch, shots):
    source = _axe_source()
    client = app.test_client()
    with app.app_context():
        month_of_activity()
        create_staff(STAFF, PASSWORD)
        sent = send_blast(3, TWO)
        links = links_by_recipient(smtp)
        click(client, links["reader00000@example.org"][0])
        click(client, links["reader00001@example.org"][1])
        record_all()
        monkeypatch.setitem(app.config, "BASE_URL", live_server.url)
        deliveries = dict(db.session.execute(
            sa.select(Subscriber.email, Delivery.id).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        ).all())
        actions = dict(db.session.execute(sa.select(Action.slug, Action.id)).all())
        db.session.add(Signature(action_id=actions[TWO[0]], email="reader00000@example.org",
                                 email_key="reader00000@example.org", name="R", source="alert",
                                 alert_id=sent, delivery_id=deliveries["reader00000@example.org"]))
        db.session.add(BounceEvent(source="smtp", kind="hard", matched_by="verp", report_key="r1",
                                   outcome="suppressed",
                                   delivery_id=deliveries["reader00002@example.org"], status="5.1.1",
                                   diagnostic="550 5.1.1 no such user"))
        bounces.suppress("blocked@example.org", "manual", "Added by a test")
        from alerts import audit

        for kind, who, what in (("staff", STAFF, "alert.send"), ("api", "api:CiviCRM sync", "subscriber.add"),
                                ("cli", "cli:root", "alert.pause")):
            audit.record(audit.Actor(kind, who, "203.0.113.9"), what, "alert 1", recipients=3)
        draft = make_alert("A draft for next week", TWO)
        reader = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == "reader00001@example.org"))
        pending = Subscriber(email="pending@example.org", status="pending", confirm_nonce="nonce1")
        leaving = Subscriber(email="leaving@example.org", status="confirmed", confirmed_at=utcnow())
        gone = Subscriber(email="gone@example.org", status="confirmed", confirmed_at=utcnow())
        to_confirm = Signature(action_id=actions[TWO[1]], email="flagged@example.org",
                               email_key="flagged@example.org", name="F", source="action-center")
        db.session.add_all([pending, leaving, gone, to_confirm])
        db.session.commit()
        hook = webhook_helpers.endpoint_with_deliveries()
        from alerts.subscribers import fields

        fields.define("region", "Region", "choice", ["North", "South"], on_signup=True)
        fields.define("volunteer", "Volunteer", "checkbox")
        fields.set_values(reader.id, {"region": ["North"]})
        invited = accounts.invite("newcomer-staff@example.org", Role.SENDER, STAFF)
        db.session.commit()
        tokens = {
            "invite": accounts.invite_token(invited),
            "confirm": confirm_token_for(pending.id, "nonce1"),
            "unsubscribe": unsubscribe_token_for(reader.id),
            "leaving": unsubscribe_token_for(leaving.id),
            "gone": unsubscribe_token_for(gone.id),
            "signature": make_signature_token(to_confirm.id),
        }
        from alerts import journeys

        journey = journeys.ensure_default()  # its timeline, and the editor of its second step
        db.session.commit()
        ids = {"alert_id": sent, "action_id": actions[TWO[0]], "subscriber_id": reader.id,
               "slug": TWO[0], "endpoint_id": hook, "staff_id": invited.id, "key": "region",
               "journey_id": journey.id, "step_id": journey.steps[1].id}
        rules = [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint not in NOT_PAGES]
    token_for = {"public.confirm": "confirm", "public.unsubscribe": "unsubscribe",
                 "privacy.erase": "unsubscribe", "public.confirm_signature": "signature",
                 "staff.invite": "invite"}

    page = browsers.new_page(browser)
    walk = Walk(page, source, live_server.url)
    try:
        # Public pages reached by a form, then the walk of the URL map, logged in as staff.
        walk.visit("/staff/login")
        walk.visit("/")
        page.locator("#email").fill("newcomer@example.org")
        page.get_by_role("button", name="Sign up").click()
        expect(page).to_have_url(re.compile(r"/subscribe(#.*)?$"))
        walk.check("signup answer")
        walk.visit(f"/actions/{TWO[1]}")
        page.locator("#name").fill("Pat Reader")
        page.locator("#sign-email").fill("pat@example.org")
        page.locator("form.sign-form button[type=submit]").click()
        expect(page).to_have_url(re.compile(rf"/actions/{TWO[1]}/thanks"))
        walk.check("signature thanks")
        walk.visit("/embed/signup?theme=dark")
        page.locator("#email").fill("framed@example.org")
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        walk.check("embedded signup answer")
        walk.visit(f"/embed/actions/{TWO[1]}")
        page.locator("#name").fill("Pat Framed")
        page.locator("#sign-email").fill("framed@example.org")
        page.get_by_role("button", name=re.compile("Sign the")).click()
        expect(page.get_by_role("heading", name="Thank you")).to_be_visible()
        walk.check("embedded signature thanks")
        walk.visit(f"/actions/confirm/{tokens['signature']}")
        page.locator("form button[type=submit]").click()
        walk.check("signature confirmed")
        walk.visit("/actions/confirm/not-a-token", "signature link error")
        walk.visit(f"/confirm/{tokens['confirm']}")
        page.locator("input[name=topics]").first.check()
        page.get_by_role("button", name="Yes, subscribe me").click()
        walk.check("confirmed")
        walk.visit(f"/confirm/{tokens['confirm']}", "confirmed already")
        walk.visit("/confirm/not-a-token", "confirm token error")
        walk.visit(f"/unsubscribe/{tokens['leaving']}")
        page.get_by_role("button", name="Save my topics").click()
        walk.check("preferences saved")
        walk.visit(f"/unsubscribe/{tokens['leaving']}")
        page.locator(f"form[action='/unsubscribe/{tokens['leaving']}'] button[type=submit]").click()
        walk.check("unsubscribed")
        walk.visit(f"/unsubscribe/{tokens['gone']}/erase")
        page.get_by_role("button", name="Erase my data").click()
        walk.check("erased")
        walk.visit(f"/unsubscribe/{tokens['gone']}", "gone")
        walk.visit("/no-such-page", "not found")

        staff_log_in(page, live_server.url, STAFF, PASSWORD)
        expect(page.locator(".charts")).to_be_visible()  # the charts part, loaded into the dashboard
        walk.check("dashboard")
        unvisitable = []
        for rule in sorted(rules, key=lambda r: r.rule):
            values = {}
            for arg in rule.arguments:
                if arg == "token" and rule.endpoint in token_for:
                    values[arg] = tokens[token_for[rule.endpoint]]
                elif arg in ids:
                    values[arg] = ids[arg]
                else:
                    unvisitable.append(f"{rule.endpoint} ({rule.rule}): no value for <{arg}>")
            if len(values) < len(rule.arguments):
                continue
            with app.test_request_context():
                from flask import url_for

                path = url_for(rule.endpoint, **values)
            walk.visit(path, rule.endpoint)
        assert not unvisitable, "routes the walk cannot fill in (add them to the walk or NOT_PAGES):\n" + \
            "\n".join(unvisitable)
        # The same staff pages with other data: a draft, its send page, an import's report.
        walk.visit(f"/staff/alerts/{draft}", "draft")
        walk.visit(f"/staff/alerts/{draft}/edit", "draft edit")
        walk.visit(f"/staff/alerts/{draft}/send", "draft send")
        walk.visit(f"/staff/alerts/{draft}/report", "draft report")
        walk.visit(f"/staff/alerts/{draft}/approve", "draft approve")
        for viewport in WIDTHS:  # the approval page and panel, to look at
            page.set_viewport_size(viewport)
            page.screenshot(path=str(shots / f"approve-{viewport['width']}.png"), full_page=True)
            page.goto(f"{live_server.url}/staff/alerts/{draft}#approval")
            page.screenshot(path=str(shots / f"draft-{viewport['width']}.png"), full_page=True)
            page.goto(f"{live_server.url}/staff/alerts/{draft}/approve")
        page.set_viewport_size(browsers.DESKTOP)
        walk.visit("/staff/subscribers/import")
        csv = shots / "import.csv"
        csv.write_text("email\nfair1@example.org\nnot an address\n", encoding="utf-8")
        page.locator("input[type=file]").set_input_files(str(csv))
        page.locator("input[name=consent]").first.check()
        page.locator("input[name=source]").fill("Street fair, sign-up sheet")
        page.locator("input[name=dry_run]").check()
        page.locator("form.form-box button[type=submit]").click()
        walk.check("import report")
        walk.visit("/staff/invite/not-a-token", "invitation link error")
        for path, name in (("/staff/staff", "staff-accounts"), ("/staff/account", "account"),
                           (f"/staff/invite/{tokens['invite']}", "invite")):
            page.goto(live_server.url + path)
            for viewport in WIDTHS:
                page.set_viewport_size(viewport)
                page.screenshot(path=str(shots / f"{name}-{viewport['width']}.png"), full_page=True)
            page.set_viewport_size(browsers.DESKTOP)
        walk.visit("/staff/webhooks")
        page.locator("#url").fill("https://8.8.4.4/hooks")
        page.locator("input[name=events]").first.check()
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.locator("#secret")).to_be_visible()
        walk.check("webhook secret shown")
        # Two-factor login: set up (the recovery codes shown), on, then the login's code step.
        walk.visit("/staff/account/2fa", "2fa setup")
        secret = page.locator("#totp-secret").inner_text().replace(" ", "")
        page.get_by_label("Code from your app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on two-factor login").click()
        expect(page.locator("#codes-text")).to_be_visible()
        walk.check("2fa recovery codes")
        recovery = page.locator("#codes-text").input_value().split()
        walk.visit("/staff/account/2fa", "2fa on")
        page.get_by_role("button", name="Log out").click()
        page.get_by_label("Email").fill(STAFF)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Two-factor login")).to_be_visible()
        walk.check("2fa code")
        page.get_by_label("Code").fill("000000")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".field-error, .flash-error").first).to_be_visible()
        walk.check("2fa wrong code")
        page.get_by_label("Code").fill(recovery[0])
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        page.goto(f"{live_server.url}/staff/alerts/{sent}/report")
        page.screenshot(path=str(shots / "report-1280.png"), full_page=True)
    finally:
        page.context.close()
    assert not walk.failures, f"axe-core found {len(walk.failures)} violations:\n" + "\n".join(walk.failures)
    assert {"staff.dashboard", "staff.alert_report", "public.action", "staff.welcome_email",
            "staff.api_tokens", "api_pages.docs", "staff.staff_accounts", "staff.account", "staff.invite",
            "staff.staff_remove", "2fa setup", "2fa code"} <= set(walk.seen)
