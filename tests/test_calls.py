"""Call campaigns: the page's numbers and script, reports of how each call went, attribution,
counts per target, the staff figures and CSV, and erasure of a caller's notes."""

from __future__ import annotations

import csv
import io
import re

import pytest
import sqlalchemy as sa

from alerts.actions import calls, references, save, signing, targets
from alerts.extensions import db
from alerts.models import Action, ActionTarget, CallLog, Delivery, Signature, Subscriber
from alerts.permissions import Role
from tests.helpers import (
    STAFF_PASSWORD,
    add_confirmed,
    blasts,
    create_staff,
    log_in,
    make_alert,
    privacy_steps,
)

TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')
SLUG = "call-the-governor"
SCRIPT = "Hello, my name is … and I live in your district.\n\nPlease fund school counsellors."
TARGETS = [
    "Gov. Ana Pérez, Governor tel:+12025550143",
    "Sen. Bo Lee, State Senator tel:+12125550100",
    "Someone Else, Assembly tel:+12125550101 [placeholder]",
]


def make_call(lines=TARGETS, **options) -> Action:
    action = save(None, title="Call the Governor", slug=SLUG, summary="Ask for counsellors in every school.",
                  call_to_action="Make the Call", kind="call", url=None, is_open=True, call_script=SCRIPT,
                  **options)
    db.session.flush()
    targets.set_targets(action, [targets.parse(line, "call") for line in lines])
    db.session.commit()
    return action


def target_ids() -> dict[str, int]:
    return dict(db.session.execute(sa.select(ActionTarget.name, ActionTarget.id)).all())


def page(client, **args) -> str:
    response = client.get(f"/actions/{SLUG}", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def report(client, outcomes: dict[int, str], *, ip: str = "198.51.100.30", query: dict | None = None,
           **fields):
    """Post the call form as a browser does: the page's hidden fields, the chosen outcomes, the rest."""
    html = page(client, **(query or {}))
    hidden = dict(HIDDEN_RE.findall(html))
    data = {**hidden, "csrf_token": TOKEN_RE.search(html).group(1), "website": "",
            **{f"outcome-{tid}": value for tid, value in outcomes.items()}, **fields}
    return client.post(f"/actions/{SLUG}/call", data=data, environ_base={"REMOTE_ADDR": ip})


def logs() -> list[CallLog]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(CallLog).order_by(CallLog.id)))


def sigs() -> list[Signature]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(Signature).order_by(Signature.id)))


@pytest.fixture
def call(app, ctx) -> Action:
    return make_call()


# -- the page ---------------------------------------------------------------------------------


def test_the_page_shows_each_real_target_with_a_tel_link_and_the_script(client, call):
    html = page(client)
    assert 'href="tel:+12025550143"' in html and "(202) 555-0143" in html
    assert 'href="tel:+12125550100"' in html and "(212) 555-0100" in html
    assert "Gov. Ana Pérez" in html and "State Senator" in html
    # A placeholder is shown to nobody: not its name, not its number.
    assert "Someone Else" not in html and "555-0101" not in html and "+12125550101" not in html
    assert "<p>Please fund school counsellors.</p>" in html
    assert html.count("How did it go?") == 2
    for label in ("I reached someone", "I left a voicemail", "The line was busy", "No answer"):
        assert label in html
    assert 'action="/actions/call-the-governor/call#sign"' in html
    assert 'name="website"' in html and 'name="opt_in"' in html and 'name="email"' in html
    assert "Be the first to call." in html and "people have called" in html
    assert 'action="/actions/call-the-governor/sign' not in html


def test_only_placeholders_says_the_numbers_are_coming(client, app, ctx):
    make_call(["Nobody Yet, Office tel:+12125550101 [placeholder]"])
    html = page(client)
    assert "The numbers to call are coming soon" in html
    assert "tel:" not in html and "How did it go?" not in html


def test_the_page_is_spanish_too(client, call):
    html = page(client, lang="es")
    assert "¿Cómo le fue?" in html and "Logré hablar con alguien" in html
    assert "Sea la primera persona en llamar." in html and "Qué decir" in html


# -- reports ----------------------------------------------------------------------------------


def test_a_report_logs_each_answered_target_and_one_signature(client, call):
    ids = target_ids()
    response = report(client, {ids["Gov. Ana Pérez"]: "reached", ids["Sen. Bo Lee"]: "voicemail"},
                      name="Cal Ler", email="cal@example.org", note="  Staffer said they’d pass it on.  ")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/actions/{SLUG}/thanks?called=1")
    [signature] = sigs()
    assert (signature.email, signature.name, signature.source) == ("cal@example.org", "Cal Ler", "direct")
    rows = logs()
    assert [(r.target_id, r.outcome, r.signature_id) for r in rows] == [
        (ids["Gov. Ana Pérez"], "reached", signature.id), (ids["Sen. Bo Lee"], "voicemail", signature.id)]
    assert {r.note for r in rows} == {"Staffer said they’d pass it on."}
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thank you for calling" in thanks and "<strong>2</strong> calls have been logged" in thanks
    assert "Call" in thanks.split('class="kind">')[1][:20]


def test_a_target_may_be_left_unanswered_and_a_second_report_keeps_one_signature(client, call):
    ids = target_ids()
    assert report(client, {ids["Sen. Bo Lee"]: "busy"}, name="Cal",
                  email="cal@example.org").status_code == 303
    assert report(client, {ids["Sen. Bo Lee"]: "reached"}, name="Cal", email="CAL@example.org",
                  ip="198.51.100.31").status_code == 303
    assert len(sigs()) == 1
    assert [r.outcome for r in logs()] == ["busy", "reached"]
    assert calls.counts(call.id) == {ids["Sen. Bo Lee"]: {"busy": 1, "reached": 1}}
    assert calls.totals(call.id) == {"reached": 1, "voicemail": 0, "busy": 1, "no-answer": 0}
    assert calls.calls_logged(call.id) == 2
    assert signing.count(call.id) == 1
    assert "<strong>1</strong> person has called" in page(client)


@pytest.mark.parametrize("outcomes, field", [
    ({}, "outcome-{first}"),                      # nothing answered
    ({"first": "maybe"}, "outcome-{first}"),      # not one of the answers
    ({"placeholder": "reached"}, "outcomes"),     # a target not shown
    ({"other": "reached"}, "outcomes"),           # another action's target
])
def test_outcomes_are_validated_and_nothing_is_written(client, call, outcomes, field):
    other = save(None, title="Another call", slug="another", summary="", call_to_action="Call", kind="call",
                 url=None, is_open=True)
    db.session.flush()
    targets.set_targets(other, [targets.parse("X Y, Z tel:+12025550199", "call")])
    db.session.commit()
    ids = target_ids()
    named = {"first": ids["Gov. Ana Pérez"], "placeholder": ids["Someone Else"], "other": ids["X Y"]}
    posted = {named[k]: v for k, v in outcomes.items()}
    response = report(client, posted, name="Cal", email="cal@example.org", note="kept note")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    name = field.format(first=ids["Gov. Ana Pérez"])
    assert f'id="{name}-error" role="alert"' in html
    if name != "outcomes":
        assert f'aria-invalid="true" aria-describedby="{name}-error"' in html
    # Nothing lost: what was typed is still there.
    assert 'value="cal@example.org"' in html and ">kept note</textarea>" in html
    assert logs() == [] and sigs() == []


def test_a_bad_identity_field_keeps_the_chosen_outcomes_and_note(client, call):
    ids = target_ids()
    response = report(client, {ids["Sen. Bo Lee"]: "voicemail"}, name="Cal", email="not-an-address",
                      note="Left my number")
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'aria-invalid="true" aria-describedby="email-error" autofocus' in html
    assert 'id="email-error" role="alert"' in html
    assert f'name="outcome-{ids["Sen. Bo Lee"]}" value="voicemail" checked' in html
    assert ">Left my number</textarea>" in html and 'value="Cal"' in html
    assert logs() == [] and sigs() == []


def test_a_long_note_is_refused(client, call):
    ids = target_ids()
    response = report(client, {ids["Sen. Bo Lee"]: "busy"}, name="Cal", email="cal@example.org",
                      note="x" * (calls.NOTE_MAX + 1))
    assert response.status_code == 400
    assert 'aria-describedby="note-error" autofocus' in response.get_data(as_text=True)
    assert logs() == []


def test_the_honeypot_writes_nothing(client, call):
    ids = target_ids()
    response = report(client, {ids["Sen. Bo Lee"]: "reached"}, name="Bot", email="bot@example.org",
                      website="http://spam.example")
    assert response.status_code == 303 and "/thanks" in response.headers["Location"]
    assert logs() == [] and sigs() == []


def test_a_petition_takes_no_call_reports(client, call):
    save(None, title="A petition", slug="a-petition", summary="", call_to_action="Sign", kind="petition",
         url=None, is_open=True)
    db.session.commit()
    html = page(client)
    token = TOKEN_RE.search(html).group(1)
    response = client.post("/actions/a-petition/call", data={"csrf_token": token, "name": "A",
                                                           "email": "a@example.org"})
    assert response.status_code == 404


def test_a_closed_call_takes_no_reports(client, call):
    ids = target_ids()
    html = page(client)
    call.is_open = False
    db.session.commit()
    data = dict(HIDDEN_RE.findall(html))
    data.update({"csrf_token": TOKEN_RE.search(html).group(1), f"outcome-{ids['Sen. Bo Lee']}": "reached",
                 "name": "Cal", "email": "cal@example.org"})
    response = client.post(f"/actions/{SLUG}/call", data=data)
    assert response.status_code == 409 and logs() == []


def test_source_codes_and_page_sources_go_on_the_signature(client, call):
    ids = target_ids()
    response = report(client, {ids["Sen. Bo Lee"]: "reached"}, query={"src": "share", "source": "nl-dec"},
                      name="Cal", email="cal@example.org", opt_in="1")
    assert response.status_code == 303
    [signature] = sigs()
    assert (signature.source, signature.source_code) == ("share", "nl-dec")


def test_one_press_from_an_alert_is_attributed_to_it(client, call):
    add_confirmed(1, prefix="reader")
    alert_id = make_alert()
    blasts.start_blast(alert_id)
    delivery_id, subscriber_id, email = db.session.execute(
        sa.select(Delivery.id, Subscriber.id, Subscriber.email).join(Subscriber)
        .where(Delivery.alert_id == alert_id)).one()
    ref = references.make_reference(delivery_id)
    html = page(client, r=ref)
    assert "Reporting as <strong>r…@example.org</strong>" in html and email not in html
    assert 'name="email"' not in html
    ids = target_ids()
    response = report(client, {ids["Gov. Ana Pérez"]: "no-answer"}, query={"r": ref}, name="Rea Der")
    assert response.status_code == 303
    [signature] = sigs()
    assert (signature.email, signature.subscriber_id, signature.source, signature.alert_id,
            signature.delivery_id) == (email, subscriber_id, "alert", alert_id, delivery_id)
    [log] = logs()
    assert (log.outcome, log.signature_id) == ("no-answer", signature.id)
    # Their name is known now: the next report is one press (no name, no address).
    html = page(client, r=ref)
    assert 'name="name"' not in html and 'name="email"' not in html
    assert report(client, {ids["Sen. Bo Lee"]: "reached"}, query={"r": ref}).status_code == 303
    assert len(sigs()) == 1 and len(logs()) == 2


def test_a_confirmation_action_sends_the_caller_to_check_their_inbox(client, app, ctx):
    make_call(requires_confirmation=True)
    ids = target_ids()
    response = report(client, {ids["Sen. Bo Lee"]: "reached"}, name="Cal", email="cal@example.org")
    assert response.headers["Location"].endswith("/thanks?called=1&check=1")
    assert len(logs()) == 1 and signing.count(db.session.scalar(sa.select(Action.id))) == 0


# -- staff -----------------------------------------------------------------------------------


def test_staff_see_counts_per_target_and_export_the_calls(client, call):
    ids = target_ids()
    assert report(client, {ids["Gov. Ana Pérez"]: "reached", ids["Sen. Bo Lee"]: "busy"}, name="Cal",
                  email="cal@example.org", note="=HYPERLINK(\"http://x\")").status_code == 303
    assert report(client, {ids["Gov. Ana Pérez"]: "voicemail"}, name="Dee", email="dee@example.org",
                  ip="198.51.100.32").status_code == 303
    # The same browser then signs in as a viewer (one client: the test's app context keeps one
    # CSRF token, which a second client's session would not match).
    create_staff("viewer@example.org", STAFF_PASSWORD, role=Role.VIEWER)
    assert log_in(client, email="viewer@example.org").status_code == 303
    viewer = client
    html = viewer.get(f"/staff/actions/{call.id}/signatures").get_data(as_text=True)
    assert "Calls by target" in html
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", html.split("call-table")[1].split("</table>")[0], re.S)
    gov = next(r for r in rows if "Gov. Ana Pérez" in r)
    cells = re.findall(r'<td class="num">(?:<strong>)?([\d,]+)', gov)
    assert cells == ["1", "1", "0", "0", "2"] and "(202) 555-0143" in gov
    assert "placeholder" in next(r for r in rows if "Someone Else" in r)
    assert viewer.get(f"/staff/actions/{call.id}/calls.csv").status_code == 403  # names and addresses
    from alerts.models import StaffUser

    db.session.execute(sa.update(StaffUser).where(StaffUser.email == "viewer@example.org")
                       .values(role=Role.ADMIN))  # made an admin: the export is theirs
    db.session.commit()
    response = client.get(f"/staff/actions/{call.id}/calls.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == ["time", "target", "outcome", "note", "signer name", "signer email"]
    body = [row[1:] for row in table[1:]]
    assert body == [
        ["Gov. Ana Pérez", "reached", "'=HYPERLINK(\"http://x\")", "Cal", "cal@example.org"],
        ["Sen. Bo Lee", "busy", "'=HYPERLINK(\"http://x\")", "Cal", "cal@example.org"],
        ["Gov. Ana Pérez", "voicemail", "", "Dee", "dee@example.org"],
    ]
    from alerts.models import AuditEvent

    db.session.rollback()
    assert "action.calls_export" in db.session.scalars(sa.select(AuditEvent.action)).all()


def test_a_petition_page_for_staff_has_no_call_figures(seeded_staff_client, ctx):
    action_id = db.session.scalar(sa.select(Action.id).order_by(Action.id))
    html = seeded_staff_client.get(f"/staff/actions/{action_id}/signatures").get_data(as_text=True)
    assert "Calls by target" not in html


# -- privacy --------------------------------------------------------------------------------


def test_erasure_clears_a_callers_notes_and_the_download_lists_their_calls(client, call):
    ids = target_ids()
    [email] = add_confirmed(1, prefix="caller")
    report(client, {ids["Sen. Bo Lee"]: "reached"}, name="Cal", email=email, note="My kid’s school")
    report(client, {ids["Sen. Bo Lee"]: "busy"}, name="Other", email="other@example.org",
           note="Other note", ip="198.51.100.33")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    data = privacy_steps.export_subscriber_data(sub_id)
    [logged] = data["call_logs"]
    assert logged == {"action": SLUG, "target": "Sen. Bo Lee", "outcome": "reached",
                      "note": "My kid’s school", "reported_at": logged["reported_at"]}
    assert logged["reported_at"]
    assert privacy_steps.erase_subscriber(sub_id, by="subscriber")
    rows = logs()
    assert [(r.outcome, r.note) for r in rows] == [("reached", None), ("busy", "Other note")]
    # The counts stay.
    assert calls.counts(call.id) == {ids["Sen. Bo Lee"]: {"reached": 1, "busy": 1}}


def test_the_domain_reads_and_checks_a_report(call):
    ids = target_ids()
    gov, sen = ids["Gov. Ana Pérez"], ids["Sen. Bo Lee"]
    form = {f"outcome-{sen}": "busy", f"outcome-{gov}": " reached ", "note": "  line one\nline two \n",
            "x": "y"}
    report = calls.read_form(form)
    # In the page's order (the governor first), the note stripped with its line break kept.
    assert calls.validate(call.id, report) == ([(gov, "reached"), (sen, "busy")], "line one\nline two")
    assert calls.validate(call.id, calls.Report({str(sen): "busy"}, "   ")) == ([(sen, "busy")], None)
    with pytest.raises(calls.CallError) as bad:
        calls.validate(call.id, calls.Report({str(sen): "busy"}, "bell \x07"))
    assert bad.value.field == "note"
    with pytest.raises(calls.CallError) as bad:
        calls.validate(call.id, calls.Report({"not-a-number": "busy"}))
    assert bad.value.field == "outcomes"
