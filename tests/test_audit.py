"""The audit trail: every change by staff, an API token or an operator leaves exactly one record.

The tables below name a request for every changing staff route, every API write and every
changing command; a route, endpoint or command added later without a row here fails
`test_the_tables_cover_every_changing_route_and_command`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from alerts import apitokens, audit, suppressions
from alerts.blasts import scheduling
from alerts.extensions import db
from alerts.models import Action, AuditEvent, Subscriber, Suppression, WebhookMessage
from alerts.webhooks import endpoints
from tests.helpers import STAFF_EMAIL, add_confirmed, csrf_token, make_alert, seed_actions

IP = "198.51.100.23"
SIGNERS_CSV = b"email,name\nsigner1@example.org,Ana\n"
SUBSCRIBERS_CSV = b"email\nnew1@example.org\n"

# Changing routes whose record is their own feature's (logging in and out, 2FA, staff accounts,
# approval): their tests assert it. A name here that is not a route (yet) is fine.
RECORDED_ELSEWHERE = {
    "staff.login", "staff.logout", "staff.login_2fa", "staff.account", "staff.account_password",
    "staff.twofactor", "staff.twofactor_setup", "staff.twofactor_disable", "staff.twofactor_codes",
    "staff.staff", "staff.staff_invite", "staff.staff_role", "staff.staff_disable", "staff.staff_enable",
    "staff.staff_remove", "staff.staff_reset_2fa", "staff.invite", "staff.alert_approve",
    "staff.alert_request_approval", "staff.staff_invite_resend", "staff.alert_approval_request",
    "staff.account_2fa_recovery_codes", "staff.account_2fa_enable", "staff.staff_2fa_reset",
    "staff.account_2fa_disable", "staff.staff_accounts", "staff.account_2fa",
}
# GET routes that record (exports): everything else a GET does changes nothing (test_security).
EXPORTS = {"staff.action_signatures_csv", "staff.action_calls_csv", "staff.data_export",
           "staff.data_subscriber_json",
           "staff.audit_trail_csv"}


@dataclass
class World:
    """Ids a request needs: made fresh for each case in the test's transaction."""

    action_id: int
    alert_id: int
    subscriber_id: int
    suppression_id: int
    token_id: int
    endpoint_id: int
    message_id: int


def _world() -> World:
    seed_actions()
    alert_id = make_alert()
    (email,) = add_confirmed(1, prefix="audited")
    suppressions.add("listed@example.org", "manual", "test")
    token, _ = apitokens.create("CRM", ["read"], created_by="cli")
    endpoint = endpoints.add("http://127.0.0.1:9/hook", ["complaint"], by="cli")
    db.session.flush()
    endpoints.enable(endpoint.id)
    from alerts.webhooks import delivery

    delivery.send_test(endpoint.id, "cli")
    db.session.commit()
    return World(
        action_id=db.session.scalar(sa.select(Action.id).order_by(Action.id)),
        alert_id=alert_id,
        subscriber_id=db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email)),
        suppression_id=db.session.scalar(sa.select(Suppression.id)),
        token_id=token.id,
        endpoint_id=endpoint.id,
        message_id=db.session.scalar(sa.select(WebhookMessage.id)),
    )


def _post(client, path: str, data: dict | None = None, page: str = "/staff/", **kw):
    payload = {**(data or {}), "csrf_token": csrf_token(client, page)}
    return client.post(path, data=payload, environ_base={"REMOTE_ADDR": IP}, **kw)


def _get(client, path: str):
    return client.get(path, environ_base={"REMOTE_ADDR": IP})


def _started(w: World) -> None:
    """The alert is sending, so pause, resume and cancel have something to act on."""
    from alerts.blasts import control

    control.launch(w.alert_id)
    db.session.commit()


def _paused(w: World) -> None:
    from alerts.blasts import control

    _started(w)
    control.pause(w.alert_id)
    db.session.commit()


def _cancelled(w: World) -> None:
    """A blast that has ended, so a reminder can follow it."""
    from alerts.blasts import control

    _started(w)
    control.cancel(w.alert_id)
    db.session.commit()


def _scheduled(w: World) -> None:
    from datetime import UTC, datetime, timedelta

    scheduling.schedule(w.alert_id, datetime.now(UTC) + timedelta(days=1))
    db.session.commit()


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (1600, 900), "#1d3557").save(out, "PNG")
    return out.getvalue()


def _with_image(w: World) -> None:
    """The action has an uploaded share image to remove."""
    from alerts.actions import images

    images.upload(db.session.get(Action, w.action_id), _png(), "A blue field")
    db.session.commit()


def _region(w: World) -> None:
    """A custom field to change or remove."""
    from alerts.subscribers import fields

    fields.define("region", "Region", "choice", ["North", "South"])
    db.session.commit()


def _journey(w: World) -> None:
    """A journey with one email step, to pause, resume, edit and remove."""
    from alerts import journeys

    journey = journeys.create("Follow-up", "imported")
    step = journeys.add_step(journey, after_minutes=60, subject="Next", body="Hello")
    db.session.commit()
    w.journey_id, w.step_id = journey.id, step.id  # type: ignore[attr-defined]


def _paused_journey(w: World) -> None:
    from alerts.models import Journey

    _journey(w)
    db.session.get(Journey, w.journey_id).paused = True  # type: ignore[attr-defined]
    db.session.commit()


def _jpath(w: World, rest: str = "") -> str:
    return f"/staff/journeys/{w.journey_id}{rest}"  # type: ignore[attr-defined]


STEP_FORM = {"wait": "2", "unit": "days", "subject": "One more step", "intro_md": "Hello"}

ACTION_FORM = {"title": "Protect Kids Online", "slug": "", "summary": "Ask Congress to act.",
               "call_to_action": "Sign the Petition", "kind": "petition", "url": "", "is_open": "y"}

# endpoint: (the request, the action it records, what to prepare first)
Case = tuple[Callable, str, Callable[[World], None] | None]
STAFF_CASES: dict[str, Case] = {
    "staff.action_new": (lambda c, w: _post(c, "/staff/actions/new", ACTION_FORM, "/staff/actions/new"),
                         "action.create", None),
    "staff.action_edit": (lambda c, w: _post(c, f"/staff/actions/{w.action_id}/edit",
                                             {**ACTION_FORM, "title": "Renamed"},
                                             f"/staff/actions/{w.action_id}/edit"), "action.edit", None),
    "staff.action_toggle": (lambda c, w: _post(c, f"/staff/actions/{w.action_id}/toggle"),
                            "action.close", None),
    "staff.action_move": (lambda c, w: _post(c, f"/staff/actions/{w.action_id}/move", {"direction": "down"}),
                          "action.move", None),
    "staff.action_image": (
        lambda c, w: _post(c, f"/staff/actions/{w.action_id}/image",
                           {"file": (io.BytesIO(_png()), "card.png"), "alt": "A blue field"},
                           f"/staff/actions/{w.action_id}/image", content_type="multipart/form-data"),
        "action.image_upload", None),
    "staff.action_image_remove": (lambda c, w: _post(c, f"/staff/actions/{w.action_id}/image/remove"),
                                  "action.image_remove", _with_image),
    "staff.action_signatures_import": (
        lambda c, w: _post(c, f"/staff/actions/{w.action_id}/signatures/import",
                           {"file": (io.BytesIO(SIGNERS_CSV), "signers.csv")},
                           f"/staff/actions/{w.action_id}/signatures", content_type="multipart/form-data"),
        "action.signatures_import", None),
    "staff.action_signatures_csv": (lambda c, w: _get(c, f"/staff/actions/{w.action_id}/signatures.csv"),
                                    "action.signatures_export", None),
    "staff.action_calls_csv": (lambda c, w: _get(c, f"/staff/actions/{w.action_id}/calls.csv"),
                               "action.calls_export", None),
    "staff.alert_new": (lambda c, w: _post(c, "/staff/alerts/new",
                                           {"subject": "New ask", "intro_md": "Hi",
                                            "actions": [db.session.scalar(sa.select(Action.slug))]},
                                           "/staff/alerts/new"), "alert.create", None),
    "staff.alert_edit": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/edit",
                                            {"subject": "Edited", "intro_md": "Hi",
                                             "actions": [db.session.scalar(sa.select(Action.slug))]},
                                            f"/staff/alerts/{w.alert_id}/edit"), "alert.edit", None),
    "staff.alert_test": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/test", {"to": "me@example.org"},
                                            f"/staff/alerts/{w.alert_id}"), "alert.test", None),
    "staff.alert_schedule": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/schedule",
                                                {"at": "2099-01-01T09:00"}, f"/staff/alerts/{w.alert_id}"),
                             "alert.schedule", None),
    "staff.alert_unschedule": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/unschedule"),
                               "alert.unschedule", _scheduled),
    "staff.alert_remind": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/remind", {"subject": "Again"},
                                              f"/staff/alerts/{w.alert_id}"), "alert.remind", _cancelled),
    "staff.alert_send": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/send", {"confirm": "y"},
                                            f"/staff/alerts/{w.alert_id}/send"), "alert.send", None),
    "staff.alert_pause": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/pause"), "alert.pause",
                          _started),
    "staff.alert_resume": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/resume"), "alert.resume",
                           _paused),
    "staff.alert_cancel": (lambda c, w: _post(c, f"/staff/alerts/{w.alert_id}/cancel"), "alert.cancel",
                           _started),
    "staff.data_import": (lambda c, w: _post(c, "/staff/subscribers/import",
                                             {"file": (io.BytesIO(SUBSCRIBERS_CSV), "list.csv"),
                                              "consent": "confirm-first"},
                                             "/staff/subscribers/import", content_type="multipart/form-data"),
                          "subscribers.import", None),
    "staff.data_export": (lambda c, w: _get(c, "/staff/subscribers/export.csv"), "subscribers.export", None),
    "staff.data_subscriber_json": (lambda c, w: _get(c, f"/staff/subscribers/{w.subscriber_id}/data.json"),
                                   "subscriber.data_export", None),
    "staff.data_subscriber_erase": (lambda c, w: _post(c, f"/staff/subscribers/{w.subscriber_id}/erase",
                                                       page=f"/staff/subscribers/{w.subscriber_id}/erase"),
                                    "subscriber.erase", None),
    "staff.data_subscriber_edit": (lambda c, w: _post(c, f"/staff/subscribers/{w.subscriber_id}/edit",
                                                      {"first_name": "Ana", "postal_code": "10001"},
                                                      page=f"/staff/subscribers/{w.subscriber_id}"),
                                   "subscriber.edit", None),
    "staff.field_add": (lambda c, w: _post(c, "/staff/fields", {"key": "region", "label": "Region",
                                                                "kind": "choice", "choices": "North\nSouth"},
                                           "/staff/fields"), "field.create", None),
    "staff.field_edit": (lambda c, w: _post(c, "/staff/fields/region/edit", {"label": "Borough",
                                                                             "choices": "North"},
                                            "/staff/fields/region/edit"), "field.edit", _region),
    "staff.field_remove": (lambda c, w: _post(c, "/staff/fields/region/remove",
                                              page="/staff/fields/region/remove"),
                           "field.remove", _region),
    "staff.suppression_add": (lambda c, w: _post(c, "/staff/suppressions",
                                                 {"email": "stop@example.org", "note": "asked by phone"},
                                                 "/staff/suppressions"), "suppression.add", None),
    "staff.suppression_lift": (lambda c, w: _post(c, f"/staff/suppressions/{w.suppression_id}/lift",
                                                  {"reason": "added by mistake"}, "/staff/suppressions"),
                               "suppression.lift", None),
    "staff.welcome_email": (lambda c, w: _post(c, "/staff/welcome",
                                               {"subject": "Welcome!", "body_md": "Hello", "enabled": "y"},
                                               "/staff/welcome"), "welcome.edit", None),
    "staff.journey_new": (lambda c, w: _post(c, "/staff/journeys/new",
                                             {"name": "Signers", "trigger": "imported"},
                                             "/staff/journeys/new"), "journey.create", None),
    "staff.journey_pause": (lambda c, w: _post(c, _jpath(w, "/pause"), page=_jpath(w)),
                            "journey.pause", _journey),
    "staff.journey_resume": (lambda c, w: _post(c, _jpath(w, "/resume"), page=_jpath(w)),
                             "journey.resume", _paused_journey),
    "staff.journey_step_new": (lambda c, w: _post(c, _jpath(w, "/steps/new"), STEP_FORM,
                                                  _jpath(w, "/steps/new")),
                               "journey.step_add", _journey),
    "staff.journey_step_edit": (lambda c, w: _post(c, _jpath(w, f"/steps/{w.step_id}"), STEP_FORM,
                                                   _jpath(w, f"/steps/{w.step_id}")),
                                "journey.step_edit", _journey),
    "staff.journey_step_remove": (lambda c, w: _post(c, _jpath(w, f"/steps/{w.step_id}/remove"),
                                                     page=_jpath(w)),
                                  "journey.step_remove", _journey),
    "staff.api_token_create": (lambda c, w: _post(c, "/staff/api-tokens",
                                                  {"name": "Sheet", "scope": ["read"]}, "/staff/api-tokens"),
                               "api_token.create", None),
    "staff.api_token_revoke": (lambda c, w: _post(c, f"/staff/api-tokens/{w.token_id}/revoke",
                                                  page="/staff/api-tokens"), "api_token.revoke", None),
    "staff.webhook_add": (lambda c, w: _post(c, "/staff/webhooks",
                                             {"url": "http://127.0.0.1:9/other", "events": ["complaint"]},
                                             "/staff/webhooks"), "webhook.add", None),
    "staff.webhook_remove": (lambda c, w: _post(c, f"/staff/webhooks/{w.endpoint_id}/remove",
                                                page="/staff/webhooks"), "webhook.remove", None),
    "staff.webhook_enable": (lambda c, w: _post(c, f"/staff/webhooks/{w.endpoint_id}/enable",
                                                page="/staff/webhooks"), "webhook.enable",
                             lambda w: (endpoints.disable(endpoints.get(w.endpoint_id), "test"),
                                        db.session.commit())),
    "staff.webhook_test": (lambda c, w: _post(c, f"/staff/webhooks/{w.endpoint_id}/test",
                                              page="/staff/webhooks"), "webhook.test", None),
    "staff.webhook_redeliver": (
        lambda c, w: _post(c, f"/staff/webhooks/{w.endpoint_id}/messages/{w.message_id}/redeliver",
                           page="/staff/webhooks"), "webhook.redeliver", None),
    "staff.audit_trail_csv": (lambda c, w: _get(c, "/staff/audit.csv?action=alert."), "audit.export", None),
}


def _events() -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).order_by(AuditEvent.id)))


@pytest.fixture
def world(app, staff_client, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_INSECURE", True)
    with app.app_context():
        return _world()


@pytest.mark.parametrize("endpoint", sorted(STAFF_CASES))
def test_each_changing_staff_route_leaves_exactly_one_record(app, staff_client, world, endpoint):
    request, action, prepare = STAFF_CASES[endpoint]
    with app.app_context():
        if prepare is not None:
            prepare(world)
        before = len(_events())
        response = request(staff_client, world)
        assert response.status_code < 400, (endpoint, response.status_code,
                                            response.get_data(as_text=True)[:500])
        response.close()
        new = _events()[before:]
    got = [(e.action, e.actor_kind, e.actor, e.ip) for e in new]
    assert got == [(action, "staff", STAFF_EMAIL, IP)], endpoint
    if endpoint not in {"staff.data_import", "staff.data_export", "staff.suppression_add",
                        "staff.audit_trail_csv"}:
        assert new[0].target, endpoint


def test_a_refused_change_records_nothing(app, staff_client, world):
    with app.app_context():
        before = len(_events())
        bad = [
            _post(staff_client, "/staff/actions/new", {**ACTION_FORM, "title": ""}, "/staff/actions/new"),
            _post(staff_client, "/staff/suppressions", {"email": "not-an-address"}, "/staff/suppressions"),
            _post(staff_client, f"/staff/suppressions/{world.suppression_id}/lift", {"reason": " "},
                  "/staff/suppressions"),
            _post(staff_client, "/staff/api-tokens", {"name": "", "scope": ["read"]}, "/staff/api-tokens"),
            _post(staff_client, f"/staff/alerts/{world.alert_id}/schedule", {"at": "2021-02-30T09:00"},
                  f"/staff/alerts/{world.alert_id}"),
            _post(staff_client, "/staff/fields", {"key": "Bad key", "label": "", "kind": "text"},
                  "/staff/fields"),
            _post(staff_client, f"/staff/subscribers/{world.subscriber_id}/edit", {"phone": "12"},
                  f"/staff/subscribers/{world.subscriber_id}"),
        ]
        assert all(r.status_code in (302, 303, 400) for r in bad), [r.status_code for r in bad]
        assert _events()[before:] == []


def test_the_tables_cover_every_changing_route_and_command(app):
    changing = {rule.endpoint for rule in app.url_map.iter_rules()
                if rule.endpoint.startswith("staff.") and "POST" in (rule.methods or ())}
    changing |= {rule.endpoint for rule in app.url_map.iter_rules()
                 if getattr(app.view_functions[rule.endpoint], "records_on_get", False)
                 and rule.endpoint.startswith("staff.")}
    assert changing - RECORDED_ELSEWHERE - set(STAFF_CASES) == set()
    assert set(STAFF_CASES) - changing == set(), "a case for a route that does not change anything"
    api_writes = {rule.endpoint for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith("api.")
                  and (rule.methods or set()) & {"POST", "PATCH", "DELETE"}}
    assert api_writes - set(API_CASES) - API_READS == set()


# -- the API ------------------------------------------------------------------------------

API_READS = {"api.count_audience"}  # a POST that counts an audience, and changes nothing


def _bearer(app, scopes=("read", "write")) -> dict:
    with app.app_context():
        _, raw = apitokens.create("CiviCRM sync", list(scopes), created_by="cli")
        db.session.commit()
    return {"Authorization": f"Bearer {raw}"}


API_CASES: dict[str, tuple[Callable, str]] = {}


def _api_case(endpoint: str, action: str):
    def register(fn):
        API_CASES[endpoint] = (fn, action)
        return fn
    return register


@_api_case("api.create_subscriber", "subscriber.add")
def _api_add(client, headers, ids):
    return client.post("/api/v1/subscribers", json={"email": "crm@example.org"}, headers=headers)


@_api_case("api.update_subscriber", "subscriber.update")
def _api_update(client, headers, ids):
    return client.patch(f"/api/v1/subscribers/{ids['subscriber']}", json={"first_name": "Ana"},
                        headers=headers)


@_api_case("api.unsubscribe_subscriber", "subscriber.unsubscribe")
def _api_unsubscribe(client, headers, ids):
    return client.post(f"/api/v1/subscribers/{ids['subscriber']}/unsubscribe", headers=headers)


@_api_case("api.erase_subscriber", "subscriber.erase")
def _api_erase(client, headers, ids):
    return client.delete(f"/api/v1/subscribers/{ids['subscriber']}", headers=headers)


@_api_case("api.create_signature", "signature.create")
def _api_sign(client, headers, ids):
    return client.post(f"/api/v1/actions/{ids['slug']}/signatures",
                       json={"email": "signer@example.org", "name": "Ana B"},
                       headers=headers)


@pytest.mark.parametrize("name", sorted(API_CASES))
def test_each_api_write_leaves_exactly_one_record_naming_its_token(app, client, name):
    headers = _bearer(app)
    with app.app_context():
        seed_actions()
        (email,) = add_confirmed(1, prefix="api")
        ids = {"subscriber": db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email)),
               "slug": db.session.scalar(sa.select(Action.slug).where(Action.is_open, Action.url.is_(None))
                                         .order_by(Action.id))}
        before = len(_events())
    fn, action = API_CASES[name]
    response = fn(client, headers, ids)
    assert response.status_code < 300, (name, response.status_code, response.get_data(as_text=True)[:400])
    with app.app_context():
        new = _events()[before:]
    assert [(e.action, e.actor_kind, e.actor) for e in new] == [(action, "api", "api:CiviCRM sync")]
    assert new[0].target and new[0].ip == "127.0.0.1"


def test_an_api_read_records_nothing(app, client):
    headers = _bearer(app, ("read",))
    with app.app_context():
        before = len(_events())
    assert client.get("/api/v1/subscribers", headers=headers).status_code == 200
    with app.app_context():
        assert _events()[before:] == []


# -- the command line ---------------------------------------------------------------------


def _cli_world(app) -> dict:
    with app.app_context():
        seed_actions()
        alert_id = make_alert()
        add_confirmed(2, prefix="cli")
        token, _ = apitokens.create("Old", ["read"], created_by="cli")
        endpoint = endpoints.add("http://127.0.0.1:9/hook", ["complaint"], by="cli")
        db.session.commit()
        slug = db.session.scalar(sa.select(Action.slug).where(Action.is_open).order_by(Action.id))
        from alerts import journeys

        journey = journeys.ensure_default()
        db.session.commit()
        return {"alert": str(alert_id), "token": str(token.id), "endpoint": str(endpoint.id), "slug": slug,
                "journey": str(journey.id)}


# command (with {placeholders}), the action recorded, what to run first
CLI_CASES: dict[str, tuple[list[str], str, list[list[str]]]] = {
    "action close": (["action", "close", "{slug}"], "action.close", []),
    "action open": (["action", "open", "{slug}"], "action.open", [["action", "close", "{slug}"]]),
    "action import-signatures": (["action", "import-signatures", "{slug}", "{signers}"],
                                 "action.signatures_import", []),
    "alert create": (["alert", "create", "--subject", "From the CLI", "--intro", "Hi"], "alert.create", []),
    "alert schedule": (["alert", "schedule", "{alert}", "--at", "2099-01-01T09:00:00+00:00"],
                       "alert.schedule", []),
    "alert schedule --cancel": (["alert", "schedule", "{alert}", "--cancel"], "alert.unschedule",
                                [["alert", "schedule", "{alert}", "--at", "2099-01-01T09:00:00+00:00"]]),
    "alert send": (["alert", "send", "{alert}", "--yes"], "alert.send", []),
    "alert pause": (["alert", "pause", "{alert}"], "alert.pause", [["alert", "send", "{alert}", "--yes"]]),
    "alert resume": (["alert", "resume", "{alert}"], "alert.resume",
                     [["alert", "send", "{alert}", "--yes"], ["alert", "pause", "{alert}"]]),
    "alert cancel": (["alert", "cancel", "{alert}"], "alert.cancel", [["alert", "send", "{alert}", "--yes"]]),
    "alert remind": (["alert", "remind", "{alert}"], "alert.remind",
                     [["alert", "send", "{alert}", "--yes"], ["alert", "cancel", "{alert}"]]),
    "subscribers import": (["subscribers", "import", "{subscribers}", "--consent", "confirm-first"],
                           "subscribers.import", []),
    "subscribers export": (["subscribers", "export"], "subscribers.export", []),
    "api-token create": (["api-token", "create", "--name", "Sheet", "--scope", "read"],
                         "api_token.create", []),
    "api-token revoke": (["api-token", "revoke", "{token}"], "api_token.revoke", []),
    "webhook add": (["webhook", "add", "http://127.0.0.1:9/more", "--event", "complaint"], "webhook.add", []),
    "webhook remove": (["webhook", "remove", "{endpoint}"], "webhook.remove", []),
    "create-staff": (["create-staff", "second@example.org", "--password-stdin"], "staff.create", []),
    "seed-actions": (["seed-actions"], "action.seed", []),
    "journey add-step": (["journey", "add-step", "{journey}", "--after", "60", "--subject", "More",
                          "--body", "Hello"], "journey.add_step", []),
    "journey pause": (["journey", "pause", "{journey}"], "journey.pause", []),
    "journey resume": (["journey", "resume", "{journey}"], "journey.resume",
                       [["journey", "pause", "{journey}"]]),
}
CLI_STDIN = {"create-staff": "correct horse battery staple 42\n"}


@pytest.mark.parametrize("name", sorted(CLI_CASES))
def test_each_changing_command_leaves_exactly_one_record(app, tmp_path, monkeypatch, name):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_INSECURE", True)
    args, action, before_args = CLI_CASES[name]
    values = {} if name == "seed-actions" else _cli_world(app)
    signers = tmp_path / "signers.csv"
    signers.write_bytes(SIGNERS_CSV)
    subscribers = tmp_path / "subscribers.csv"
    subscribers.write_bytes(SUBSCRIBERS_CSV)
    values |= {"signers": str(signers), "subscribers": str(subscribers)}
    runner = app.test_cli_runner()
    for step in before_args:
        done = runner.invoke(args=[a.format(**values) for a in step])
        assert done.exit_code == 0, done.output
    with app.app_context():
        before = len(_events())
    result = runner.invoke(args=[a.format(**values) for a in args], input=CLI_STDIN.get(name))
    assert result.exit_code == 0, result.output
    with app.app_context():
        new = _events()[before:]
    assert [(e.action, e.actor_kind) for e in new] == [(action, "cli")], name
    assert new[0].actor.startswith("cli:")


def test_a_read_only_command_records_nothing(app, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_ALLOW_INSECURE", True)
    made = _cli_world(app)
    runner = app.test_cli_runner()
    with app.app_context():
        before = len(_events())
    for args in (["action", "list"], ["alert", "status", made["alert"]], ["api-token", "list"],
                 ["webhook", "list"], ["audit"], ["journey", "list", "--json"]):
        assert runner.invoke(args=args).exit_code == 0, args
    with app.app_context():
        assert _events()[before:] == []


# -- reading the trail --------------------------------------------------------------------


def _recorded(app, *rows: tuple[str, str, str]) -> None:
    with app.app_context():
        for kind, actor, action in rows:
            audit.record(audit.Actor(kind, actor, "192.0.2.1"), action, "alert 7", note="=HYPERLINK(1)")
        db.session.commit()


def test_the_staff_page_filters_and_its_csv_exports_what_it_shows(app, staff_client):
    _recorded(app, ("staff", "ana@example.org", "alert.send"), ("api", "api:CRM", "subscriber.add"),
              ("cli", "cli:root", "alert.pause"))
    page = staff_client.get("/staff/audit?action=alert.").get_data(as_text=True)
    assert "ana@example.org" in page and "cli:root" in page and "api:CRM" not in page
    assert "alert.send" in page and "alert.pause" in page
    by_actor = staff_client.get("/staff/audit?actor=api:").get_data(as_text=True)
    assert "subscriber.add" in by_actor and "alert.send" not in by_actor
    csv_text = staff_client.get("/staff/audit.csv?action=alert.").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0] == ",".join(audit.CSV_HEADER)
    assert len(lines) == 3 and all("subscriber.add" not in line for line in lines)
    # A cell a spreadsheet would run is written inert (the project's one CSV writer).
    _recorded(app, ("api", "=HYPERLINK(1)", "alert.cancel"))
    hostile = staff_client.get("/staff/audit.csv?action=alert.cancel").get_data(as_text=True)
    assert ",'=HYPERLINK(1)," in hostile and ",=HYPERLINK" not in hostile
    bad = staff_client.get("/staff/audit?since=yesterday")
    assert bad.status_code == 400 and "is not a date" in bad.get_data(as_text=True)


def test_alerts_audit_prints_a_table_or_json_and_refuses_a_bad_since(app):
    _recorded(app, ("staff", "ana@example.org", "alert.send"), ("cli", "cli:root", "alert.pause"))
    runner = app.test_cli_runner()
    table = runner.invoke(args=["audit", "--since", "2000-01-01"])
    assert table.exit_code == 0 and "alert.send" in table.output and "staff:ana@example.org" in table.output
    as_json = json.loads(runner.invoke(args=["audit", "--json", "--action", "alert.pause"]).output)
    assert [(e["action"], e["actor"], e["ip"], e["target"]) for e in as_json] == [
        ("alert.pause", "cli:root", "192.0.2.1", "alert 7")]
    future = runner.invoke(args=["audit", "--json", "--since", "2999-01-01T00:00:00+00:00"])
    future = json.loads(future.output)
    assert future == []
    bad = runner.invoke(args=["audit", "--since", "last week"])
    assert bad.exit_code == 2 and "ISO 8601" in bad.output


def test_erasing_a_subscriber_leaves_no_trace_of_their_address_in_the_trail(app, staff_client):
    with app.app_context():
        (email,) = add_confirmed(1, prefix="forgetme")
        sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    _post(staff_client, "/staff/suppressions", {"email": "forgetme-too@example.org", "note": "phone"},
          "/staff/suppressions")
    _get(staff_client, f"/staff/subscribers/{sub_id}/data.json")
    erased = _post(staff_client, f"/staff/subscribers/{sub_id}/erase",
                   page=f"/staff/subscribers/{sub_id}/erase")
    assert erased.status_code == 303
    with app.app_context():
        text = json.dumps([audit.as_dict(e) for e in _events()], default=str).lower()
    assert {"subscriber.data_export", "subscriber.erase", "suppression.add"} <= {
        e["action"] for e in json.loads(text)}
    assert email not in text and "forgetme-too@example.org" not in text


def test_the_trail_refuses_updates_and_deletes_on_postgresql(app, ctx):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's (CI runs both databases)")
    audit.record(audit.Actor("cli", "cli:root"), "alert.send", "alert 1")
    db.session.commit()
    for statement in ("UPDATE audit_events SET action = 'nothing'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            db.session.execute(sa.text(statement))
        db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 1
