"""Letters and calls as staff make them (the action form: kind, text, script, targets typed or
from CSV), the seed's letter and call, and what reports, audiences, the CLI and the API say of them."""

from __future__ import annotations

import io
import json
import re

import sqlalchemy as sa

from alerts import audiences
from alerts.actions import SEED_ACTIONS, seed_actions, slugify
from alerts.actions.catalog import ECDFA, LGBTQ_YOUTH, SEED_SPANISH
from alerts.actions.targets import targets_of
from alerts.apitokens import create as create_token
from alerts.extensions import db
from alerts.models import (
    Action,
    ActionTarget,
    AuditEvent,
    CallLog,
    LetterDelivery,
    Signature,
    Subscriber,
    alert_actions,
)
from alerts.reports.alert_report import report
from tests.helpers import make_alert, post
from tests.helpers import seed_actions as seed_committed

NEW = "/staff/actions/new"
LETTER = {"title": "Write to the Governor", "slug": "", "summary": "Ask the Governor to fund youth services.",
          "call_to_action": "Send the Letter", "kind": "letter", "url": "", "is_open": "y",
          "letter_subject": "Fund youth services", "letter_text": "Dear Governor,\n\nPlease fund them.",
          "own_paragraph": "y",
          "targets": "Kathy Hochul, Governor <governor@example.org>\n"
                     "State Senate, Albany <senate@example.org> [placeholder]"}
CALL = {"title": "Call the Mayor", "slug": "", "summary": "Ask the Mayor to close Rikers.",
        "call_to_action": "Make the Call", "kind": "call", "url": "", "is_open": "y",
        "call_script": "Hello, I live in New York and ask the Mayor to close Rikers.",
        "targets": "City Hall, Office of the Mayor tel:+12127887171"}


def _action(title: str) -> Action:
    db.session.rollback()
    return db.session.scalar(sa.select(Action).where(Action.title == title))


def _targets(title: str) -> list[tuple]:
    action = _action(title)
    return [(t.name, t.title, t.email, t.phone, t.placeholder) for t in targets_of(action.id)]


def _events(name: str) -> list[AuditEvent]:
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == name)
                                   .order_by(AuditEvent.id)))


# -- the staff form ------------------------------------------------------------------------------


def test_staff_create_a_letter_with_typed_targets_and_edit_it(app, staff_client, ctx):
    created = post(staff_client, NEW, LETTER, page=NEW)
    assert created.status_code == 303, created.get_data(as_text=True)
    action = _action("Write to the Governor")
    assert (action.kind, action.letter_subject, action.letter_text, action.allow_comments) == (
        "letter", "Fund youth services", "Dear Governor,\n\nPlease fund them.", True)
    assert _targets("Write to the Governor") == [
        ("Kathy Hochul", "Governor", "governor@example.org", None, False),
        ("State Senate", "Albany", "senate@example.org", None, True)]
    [event] = _events("action.create")
    assert event.detail["kind"] == "letter" and event.detail["targets"] == 2
    assert event.detail["placeholders"] == 1

    # The edit page shows the targets as typed, the placeholder flagged.
    edit = f"/staff/actions/{action.id}/edit"
    page = staff_client.get(edit).get_data(as_text=True)
    assert "Kathy Hochul, Governor &lt;governor@example.org&gt;" in page
    assert "State Senate, Albany &lt;senate@example.org&gt; [placeholder]" in page
    assert "Placeholder: replace before sending" in page
    assert re.search(r'<input checked id="own_paragraph" name="own_paragraph" type="checkbox"', page)
    assert 'action-form.js' in page

    # Replacing the placeholder keeps the governor's row (its deliveries stay attached).
    keep = targets_of(action.id)[0].id
    as_shown = {**LETTER, "slug": action.slug, "allow_comments": "y"}  # what the edit page posts back
    replaced = ("Kathy Hochul, Governor <governor@example.org>\n"
                "Andrea Stewart-Cousins, Majority Leader <leader@example.org>")
    edited = post(staff_client, edit, {**as_shown, "targets": replaced}, page=edit)
    assert edited.status_code == 303
    rows = targets_of(_action("Write to the Governor").id)
    assert [(t.name, t.placeholder) for t in rows] == [("Kathy Hochul", False),
                                                       ("Andrea Stewart-Cousins", False)]
    assert rows[0].id == keep
    [event] = _events("action.edit")
    assert event.detail["fields"] == ["targets"] and event.detail["placeholders"] == 0
    assert "Placeholder: replace before sending" not in staff_client.get(edit).get_data(as_text=True)


def test_staff_create_a_call_with_its_spanish_script_and_targets_from_csv(app, staff_client, ctx):
    csv = (b"name,title,phone,placeholder\n"
           b"City Hall,Office of the Mayor,(212) 788-7171,no\n"
           b"Council Speaker,NYC Council,+1 212 788 7210,yes\n")
    form = {**CALL, "targets": "Someone, Typed tel:+12125550100",
            "title_es": "Llame al alcalde", "call_to_action_es": "Llame ahora",
            "call_script_es": "Hola, vivo en Nueva York y pido al alcalde que cierre Rikers.",
            "targets_file": (io.BytesIO(csv), "targets.csv")}
    created = post(staff_client, NEW, form, page=NEW)
    assert created.status_code == 303, created.get_data(as_text=True)
    action = _action("Call the Mayor")
    assert action.kind == "call" and action.call_script.startswith("Hello, I live")
    assert action.translations["es"]["call_script"].startswith("Hola, vivo")
    # The file's list replaced the typed one.
    assert _targets("Call the Mayor") == [
        ("City Hall", "Office of the Mayor", None, "+12127887171", False),
        ("Council Speaker", "NYC Council", None, "+12127887210", True)]
    signatures = staff_client.get(f"/staff/actions/{action.id}/signatures").get_data(as_text=True)
    assert "1 of 2 targets is a placeholder." in signatures
    assert "Placeholder: replace before sending" in signatures
    listing = staff_client.get("/staff/actions").get_data(as_text=True)
    row = listing.split(">Call the Mayor</a>")[1].split("</tr>")[0]
    assert "Placeholder target: replace before sending" in row
    # The Spanish page reads the Spanish script.
    from alerts.actions import text_of
    assert text_of(action, "es").call_script.startswith("Hola, vivo")


def test_form_errors_are_named_at_their_field_and_keep_what_was_typed(app, staff_client, ctx):
    typed = "Kathy Hochul, Governor <governor@example.org>\nNo Address Here"
    bad = post(staff_client, NEW, {**LETTER, "targets": typed}, page=NEW)
    assert bad.status_code == 400
    page = bad.get_data(as_text=True)
    field = page.split('id="targets"')[0].rsplit('<div class="field', 1)[1]
    assert "has-error" in field
    assert "Line 2: a letter&#39;s target is written" in page
    assert "Kathy Hochul, Governor &lt;governor@example.org&gt;\nNo Address Here</textarea>" in page
    assert 'value="Fund youth services"' in page and "Please fund them." in page

    missing = post(staff_client, NEW, {**LETTER, "letter_subject": ""}, page=NEW)
    assert missing.status_code == 400
    page = missing.get_data(as_text=True)
    assert "A letter needs a subject." in page
    assert re.search(r'<div class="field +has-error">\s*<label for="letter_subject"', page)
    assert "State Senate, Albany &lt;senate@example.org&gt; [placeholder]" in page

    none = post(staff_client, NEW, {**CALL, "targets": ""}, page=NEW)
    assert none.status_code == 400 and "A call needs at least one target" in none.get_data(as_text=True)

    csv = b"name,title,email\nSomeone,Nobody,not-an-address\n"
    from_file = post(staff_client, NEW, {**LETTER, "targets_file": (io.BytesIO(csv), "t.csv")}, page=NEW)
    assert from_file.status_code == 400
    page = from_file.get_data(as_text=True)
    file_field = page.split('id="targets_file"')[0].rsplit('<div class="field', 1)[1]
    assert "has-error" in file_field and "Line 2: “not-an-address” is not an email address" in page
    assert "Kathy Hochul, Governor &lt;governor@example.org&gt;" in page  # the typed list is still there
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Action)) == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ActionTarget)) == 0


def test_a_petition_keeps_no_targets_and_switching_kind_loses_none(app, staff_client, ctx):
    post(staff_client, NEW, LETTER, page=NEW)
    action = _action("Write to the Governor")
    edit = f"/staff/actions/{action.id}/edit"
    # Switched to a petition: the targets field (hidden by the page's script) is left alone.
    switched = post(staff_client, edit, {**LETTER, "kind": "petition", "targets": "garbage"}, page=edit)
    assert switched.status_code == 303
    assert _action("Write to the Governor").kind == "petition"
    assert len(_targets("Write to the Governor")) == 2
    assert "Placeholder target" not in staff_client.get("/staff/actions").get_data(as_text=True)


def test_the_form_offers_every_kind_and_groups_fields_by_kind(app, staff_client):
    page = staff_client.get(NEW).get_data(as_text=True)
    for kind in ("petition", "pledge", "letter", "call"):
        assert f'<option value="{kind}"' in page
    assert 'enctype="multipart/form-data"' in page
    assert 'data-kinds="letter" id="letter-fields"' in page
    assert re.search(r'data-kinds="call">\s*<div class="field ?">\s*<label for="call_script"', page)
    assert re.search(r'data-kinds="call">\s*<div class="field ?">\s*<label for="call_script_es"', page)
    # No field is hidden without the script: every one is in the page, none with `hidden`.
    assert " hidden" not in page.split("<form")[1].split("</form>")[0]
    with app.test_client().get("/static/action-form.js") as script:
        assert script.status_code == 200 and b"data-kinds" in script.data


# -- the seed ------------------------------------------------------------------------------------


def test_the_seed_makes_a_call_and_a_letter_with_placeholder_targets(app, ctx):
    seed_actions()
    call = db.session.scalar(sa.select(Action).where(Action.title == LGBTQ_YOUTH))
    letter = db.session.scalar(sa.select(Action).where(Action.title == ECDFA))
    assert (call.kind, call.call_to_action) == ("call", "Call Your Senators")
    assert "Equality Act" in call.call_script
    assert call.translations["es"]["call_to_action"] == "Llame a sus senadores"
    assert call.translations["es"]["call_script"] == SEED_SPANISH[LGBTQ_YOUTH]["call_script"]
    assert [(t.name, t.title, t.phone, t.placeholder) for t in targets_of(call.id)] == [
        ("U.S. Capitol Switchboard", "Ask for your senators' offices", "+12022243121", True)]
    assert (letter.kind, letter.call_to_action, letter.allow_comments) == ("letter", "Send the Letter", True)
    assert letter.letter_subject and "Every Child Deserves a Family Act" in letter.letter_text
    assert letter.translations["es"]["call_to_action"] == "Envíe la carta"
    assert [(t.email, t.placeholder) for t in targets_of(letter.id)] == [
        ("representative@example.org", True), ("senators@example.org", True)]
    others = [a for a in db.session.scalars(sa.select(Action)) if a.id not in (call.id, letter.id)]
    assert {a.kind for a in others} == {"petition", "pledge"}
    assert [a.call_to_action for a in others if a.kind == "petition"] == ["Sign the Petition"] * 3
    # Seeding again adds no second set of targets.
    seed_actions()
    assert len(targets_of(letter.id)) == 2 and len(targets_of(call.id)) == 1


def _as_before(title: str) -> Action:
    """The action as a database seeded before letters and calls has it: a petition, no targets."""
    action = db.session.scalar(sa.select(Action).where(Action.title == title))
    db.session.execute(sa.delete(ActionTarget).where(ActionTarget.action_id == action.id))
    action.kind, action.call_to_action = "petition", "Sign the Petition"
    action.letter_subject = action.letter_text = action.call_script = None
    action.allow_comments = False
    es = dict(action.translations["es"])
    es["call_to_action"] = "Firme la petición"
    es.pop("call_script", None)
    action.translations = {"es": es}
    db.session.flush()
    return action


def test_an_older_seed_converts_only_while_untouched(app, ctx):
    seed_actions()
    call, letter = _as_before(LGBTQ_YOUTH), _as_before(ECDFA)
    # Someone signed the letter's petition: it stays a petition (its signers signed one).
    db.session.add(Signature(action_id=letter.id, email="s@example.org", email_key="s@example.org",
                             name="S", source="action-center"))
    db.session.flush()
    seed_actions()
    db.session.refresh(call)
    db.session.refresh(letter)
    assert (call.kind, call.call_to_action) == ("call", "Call Your Senators")
    assert call.translations["es"]["call_to_action"] == "Llame a sus senadores"
    assert call.translations["es"]["call_script"] == SEED_SPANISH[LGBTQ_YOUTH]["call_script"]
    assert [t.placeholder for t in targets_of(call.id)] == [True]
    assert (letter.kind, letter.call_to_action) == ("petition", "Sign the Petition")
    assert targets_of(letter.id) == []

    # An edited title keeps a petition a petition too, and so does a staff-made kind.
    db.session.execute(sa.delete(Signature))
    letter.title = "Demand More Loving Homes"
    db.session.flush()
    seed_actions()
    assert db.session.scalar(sa.select(Action.kind).where(Action.id == letter.id)) == "petition"


def test_the_seed_titles_are_the_action_centers(app, client, ctx):
    seed_committed()
    page = client.get("/").get_data(as_text=True)
    for title, _cta, _summary in SEED_ACTIONS:
        assert title.replace("'", "&#39;") in page
    cards = re.findall(r'<article class="card card-(\w+)">\s*<p class="kind">(\w+)</p>', page)
    assert ("call", "Call") in cards and ("letter", "Letter") in cards
    assert [c for c in cards if c[0] == "petition"] == [("petition", "Petition")] * 3
    assert [c for c in cards if c[0] == "pledge"] == [("pledge", "Pledge")] * 2
    es = client.get("/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<p class="kind">Llamada</p>' in es and '<p class="kind">Carta</p>' in es


# -- reports ---------------------------------------------------------------------------------------


def _signature(action_id: int, alert_id: int | None, n: int) -> Signature:
    email = f"r{n}@example.org"
    sig = Signature(action_id=action_id, alert_id=alert_id, email=email, email_key=email, name="R",
                    source="alert")
    db.session.add(sig)
    db.session.flush()
    return sig


def test_the_alert_report_counts_letters_sent_and_calls_made(app, staff_client, ctx):
    seed_committed()
    letter_slug, call_slug = slugify(ECDFA), slugify(LGBTQ_YOUTH)
    alert_id = make_alert(slugs=[letter_slug, call_slug])
    letter = db.session.scalar(sa.select(Action).where(Action.slug == letter_slug))
    call = db.session.scalar(sa.select(Action).where(Action.slug == call_slug))
    house, senate = targets_of(letter.id)
    [switchboard] = targets_of(call.id)
    ours = [_signature(letter.id, alert_id, n) for n in range(3)]
    stranger = _signature(letter.id, None, 9)  # signed from elsewhere: not this alert's
    for sig, status in zip(ours, ("sent", "sent", "queued"), strict=True):
        db.session.add(LetterDelivery(signature_id=sig.id, target_id=house.id, status=status))
        db.session.add(LetterDelivery(signature_id=sig.id, target_id=senate.id,
                                      status="sent" if status == "sent" else "failed"))
    db.session.add(LetterDelivery(signature_id=stranger.id, target_id=house.id, status="sent"))
    caller = _signature(call.id, alert_id, 20)
    db.session.add_all([CallLog(action_id=call.id, target_id=switchboard.id, signature_id=caller.id,
                                outcome="reached"),
                        CallLog(action_id=call.id, target_id=switchboard.id, signature_id=caller.id,
                                outcome="voicemail"),
                        CallLog(action_id=call.id, target_id=switchboard.id, signature_id=None,
                                outcome="busy")])
    db.session.commit()

    rows = {r["slug"]: r for r in report(alert_id)["by_action"]}
    def figures(slug: str) -> tuple:
        return rows[slug]["kind"], rows[slug]["letters_sent"], rows[slug]["calls_made"]

    assert figures(letter_slug) == ("letter", 4, 0)
    assert figures(call_slug) == ("call", 0, 2)

    page = staff_client.get(f"/staff/alerts/{alert_id}/report").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "Letters sent 4" in text and "Calls made 2" in text

    out = app.test_cli_runner().invoke(args=["alert", "report", str(alert_id), "--json"])
    data = json.loads(out.output)
    assert {r["slug"]: r["letters_sent"] for r in data["by_action"]}[letter_slug] == 4
    plain = app.test_cli_runner().invoke(args=["alert", "report", str(alert_id)]).output
    assert f"{letter_slug} (letter):" in plain and "4 letters sent" in plain and "2 calls made" in plain


# -- audiences -------------------------------------------------------------------------------------


def test_audiences_of_letter_writers_and_callers(app, staff_client, ctx):
    seed_committed()
    letter = db.session.scalar(sa.select(Action).where(Action.title == ECDFA))
    call = db.session.scalar(sa.select(Action).where(Action.title == LGBTQ_YOUTH))
    rikers = db.session.scalar(sa.select(Action).where(Action.kind == "petition"))
    subs = {}
    for name in ("writer", "caller", "both", "petitioner", "nobody", "listener"):
        subs[name] = Subscriber(email=f"{name}@example.org", status="confirmed")
        db.session.add(subs[name])
    db.session.flush()

    def sign(who: str, action: Action) -> Signature:
        sig = Signature(action_id=action.id, subscriber_id=subs[who].id, email=subs[who].email,
                        email_key=subs[who].email, name=who, source="action-center")
        db.session.add(sig)
        db.session.flush()
        return sig

    sign("writer", letter)
    sign("both", letter)
    target = targets_of(call.id)[0]
    for who in ("caller", "both"):
        db.session.add(CallLog(action_id=call.id, target_id=target.id, signature_id=sign(who, call).id,
                               outcome="reached"))
    sign("listener", call)  # opened the call page and signed, but logged no call
    sign("petitioner", rikers)
    db.session.commit()

    def who(**raw) -> set[str]:
        rules = audiences.parse(raw)
        query = sa.select(Subscriber.email).where(*audiences.conditions(rules, []))
        return {e.split("@")[0] for e in db.session.scalars(query)}

    assert who(only_writers=True) == {"writer", "both"}
    assert who(only_callers=True) == {"caller", "both"}
    assert who(only_writers=True, only_callers=True) == {"both"}
    assert len(who()) == 6
    rules = audiences.parse({"only_writers": True, "only_callers": True})
    assert audiences.describe(rules) == ("everyone confirmed, only those who wrote a letter, "
                                         "only those who made a call")
    assert rules.to_json() == {"only_writers": True, "only_callers": True}

    # The compose page's live count.
    live = staff_client.get("/staff/alerts/audience.json?only_writers=y").get_json()
    assert live["size"] == 2 and "wrote a letter" in live["description"]
    assert staff_client.get("/staff/alerts/audience.json?only_callers=y").get_json()["size"] == 2
    compose = staff_client.get("/staff/alerts/new").get_data(as_text=True)
    assert 'name="only_writers"' in compose and 'name="only_callers"' in compose

    # The CLI's options keep the rule on the draft.
    out = app.test_cli_runner().invoke(args=["alert", "create", "--subject", "Thank you, writers",
                                             "--intro", "Hi", "--action", letter.slug, "--only-writers"])
    assert out.exit_code == 0, out.output
    alert_id = int(out.output.strip().split()[-1])
    from alerts.models import Alert
    assert db.session.get(Alert, alert_id).audience == {"only_writers": True}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(alert_actions)
                             .where(alert_actions.c.alert_id == alert_id)) == 1


def test_the_api_counts_an_audience_of_callers(app, client, ctx):
    seed_committed()
    _row, plain = create_token("counter", ["read"], created_by="cli")
    db.session.commit()
    response = client.post("/api/v1/audiences/count", headers={"Authorization": f"Bearer {plain}"},
                           json={"only_callers": True})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"count": 0,
                                   "description": "everyone confirmed, only those who made a call"}


# -- the API and the CLI's list --------------------------------------------------------------------


def test_the_api_gives_kinds_and_targets_email_only_to_writers(app, client, ctx):
    seed_committed()
    _r, reader = create_token("reader", ["read"], created_by="cli")
    _w, writer = create_token("writer", ["read", "write"], created_by="cli")
    db.session.commit()
    letter_slug, call_slug = slugify(ECDFA), slugify(LGBTQ_YOUTH)

    def get(path: str, raw: str):
        response = client.get(path, headers={"Authorization": f"Bearer {raw}"})
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    listed = {a["slug"]: a for a in get("/api/v1/actions?limit=100", reader)["items"]}
    assert listed[letter_slug]["kind"] == "letter" and listed[call_slug]["kind"] == "call"
    assert listed[letter_slug]["targets"] == [
        {"name": "Your Representative", "title": "U.S. House of Representatives", "phone": None,
         "placeholder": True},
        {"name": "Your Senators", "title": "U.S. Senate", "phone": None, "placeholder": True}]
    assert listed[call_slug]["targets"][0]["phone"] == "+12022243121"
    assert listed[slugify(SEED_ACTIONS[0][0])]["targets"] == []

    one = get(f"/api/v1/actions/{letter_slug}", writer)
    assert one["kind"] == "letter" and [t["email"] for t in one["targets"]] == [
        "representative@example.org", "senators@example.org"]
    assert "email" not in get(f"/api/v1/actions/{letter_slug}", reader)["targets"][0]
    missing = client.get("/api/v1/actions/no-such-action", headers={"Authorization": f"Bearer {reader}"})
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/actions/{slug}" in spec["paths"]
    assert "targets" in spec["components"]["schemas"]["ActionOut"]["properties"]
    assert "email" in spec["components"]["schemas"]["TargetOut"]["properties"]


def test_action_list_json_names_kinds_and_counts_targets(app, ctx):
    seed_committed()
    out = app.test_cli_runner().invoke(args=["action", "list", "--json"])
    items = {i["slug"]: i for i in json.loads(out.output)}
    assert (items[slugify(ECDFA)]["kind"], items[slugify(ECDFA)]["targets"],
            items[slugify(ECDFA)]["placeholder_targets"]) == ("letter", 2, 2)
    assert (items[slugify(LGBTQ_YOUTH)]["kind"], items[slugify(LGBTQ_YOUTH)]["targets"]) == ("call", 1)
    assert items[slugify(SEED_ACTIONS[0][0])]["targets"] == 0
