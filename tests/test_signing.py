"""Signing petitions and pledges: the page, the form's rules, attribution, one press from an alert,
forwarded and tampered references, rate limits, confirmation, privacy."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from alerts.actions import references, signing
from alerts.extensions import db
from alerts.models import Action, Delivery, Signature, Subscriber
from alerts.subscribers.tokens import make_unsubscribe_token
from tests.helpers import (
    SEED_ACTIONS,
    add_confirmed,
    blasts,
    link_in,
    make_alert,
    privacy_steps,
    seed_actions,
)

RIKERS = "call-on-mayor-adams-to-follow-the-law-and-close-rikers-island"
PLEDGE = "sign-the-healthy-kids-healthy-minds-pledge"
TOKEN_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def seeded(app):
    with app.app_context():
        seed_actions()


def page(client, slug: str, **args) -> str:
    response = client.get(f"/actions/{slug}", query_string=args)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def sign(client, slug: str, *, ip: str = "198.51.100.20", query: dict | None = None, **fields):
    """Post the form the way a browser does: with the page's hidden fields, then the typed ones."""
    html = page(client, slug, **(query or {}))
    hidden = dict(HIDDEN_RE.findall(html))
    data = {**hidden, "csrf_token": TOKEN_RE.search(html).group(1), "website": "", **fields}
    return client.post(f"/actions/{slug}/sign", data=data, environ_base={"REMOTE_ADDR": ip})


def signatures(slug: str | None = None) -> list[Signature]:
    db.session.rollback()
    query = sa.select(Signature).order_by(Signature.id)
    if slug:
        query = query.join(Action).where(Action.slug == slug)
    return list(db.session.scalars(query))


def count(slug: str) -> int:
    db.session.rollback()
    return signing.count(db.session.scalar(sa.select(Action.id).where(Action.slug == slug)))


def shown_count(html: str) -> int:
    return int(re.search(r'class="tally-count"><strong>([\d,]+)</strong>', html).group(1).replace(",", ""))


# -- the seven actions ---------------------------------------------------------------------


def test_each_seeded_action_has_its_text_target_and_button(client, seeded, ctx):
    for title, cta, summary in SEED_ACTIONS:
        action = db.session.scalar(sa.select(Action).where(Action.title == title))
        html = page(client, action.slug)
        assert summary.split(",")[0].replace("’", "&#39;") in html.replace("’", "&#39;")
        kind = {"Sign the Pledge": "pledge", "Sign the Petition": "petition", "Send the Letter": "letter",
                "Call Your Senators": "call"}[cta]
        assert action.kind == kind and action.call_to_action == cta
        assert cta in html
        if kind == "call":  # the call's page: its numbers and script, not a signing form's button
            continue
        if kind in ("petition", "pledge"):  # a letter's button is the letter page's own
            assert f">{cta}</button>" in html
        assert 'name="opt_in"' in html and 'name="website"' in html and 'name="csrf_token"' in html
        assert "checked" not in html.split('name="opt_in"')[1].split(">")[0]  # unticked
        if action.kind == "pledge":
            assert action.pledge_text and action.pledge_text in html
    assert "To: <strong>Mayor Adams</strong>" in page(client, RIKERS)
    ecdfa = db.session.scalar(sa.select(Action).where(Action.title.startswith("Fight Against")))
    assert "To: <strong>Congress</strong>" in page(client, ecdfa.slug)


def test_seeding_twice_fills_text_once_and_keeps_staff_edits(app, ctx):
    seed_actions()
    action = db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))
    action.body, action.target = "Staff's own words.", "NYC Council"
    db.session.commit()
    assert seed_actions() == (0, len(SEED_ACTIONS))
    db.session.refresh(action)
    assert (action.body, action.target) == ("Staff's own words.", "NYC Council")


# -- signing from the page -----------------------------------------------------------------


def test_sign_from_the_action_center_counts_and_thanks(client, seeded, ctx):
    index = client.get("/").get_data(as_text=True)
    assert f"/actions/{RIKERS}?src=action-center" in index
    before = shown_count(page(client, RIKERS))
    response = sign(client, RIKERS, query={"src": "action-center"}, name="Ada Lovelace",
                    email="Ada@Example.org", postal_code="10001")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/actions/{RIKERS}/thanks")
    [row] = signatures(RIKERS)
    assert (row.name, row.email, row.email_key, row.postal_code) == (
        "Ada Lovelace", "Ada@example.org", "ada@example.org", "10001")
    assert (row.source, row.alert_id, row.delivery_id) == ("action-center", None, None)
    assert row.confirmed_at is not None and row.subscriber_id is None
    assert shown_count(page(client, RIKERS)) == before + 1
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thank you for signing" in thanks
    for network in ("mailto:?", "twitter.com/intent/tweet", "facebook.com/sharer", "wa.me/", "Copy link"):
        assert network in thanks
    assert "src%3Dshare" in thanks  # shared links say so
    # The next open action, not this one.
    assert "Next: take another action" in thanks and f"/actions/{RIKERS}?" not in thanks.split("Next:")[1]
    # A visitor who follows a share link is attributed to it; a bare visit is direct.
    sign(client, RIKERS, query={"src": "share"}, name="Friend", email="friend@example.org")
    sign(client, RIKERS, name="Walk-in", email="walkin@example.org")
    assert [s.source for s in signatures(RIKERS)] == ["action-center", "share", "direct"]


def test_signing_twice_is_harmless_and_answers_the_same(client, seeded, ctx):
    first = sign(client, RIKERS, name="Ada", email="ada@example.org")
    again = sign(client, RIKERS, name="Someone Else", email="ADA@example.org", ip="198.51.100.99")
    assert (first.status_code, first.headers["Location"]) == (again.status_code, again.headers["Location"])
    [row] = signatures(RIKERS)
    assert row.name == "Ada"
    assert count(RIKERS) == 1


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"name": "", "email": "a@example.org"}, "name", "Please enter your name."),
    ({"name": "Ada", "email": "not-an-address"}, "email", "email address"),
    ({"name": "Ada", "email": ""}, "email", "Please enter your email address."),
    ({"name": "Ada", "email": "a@example.org", "postal_code": "<script>"}, "postal_code", "postal code"),
    ({"name": "x" * 201, "email": "a@example.org"}, "name", "too long"),
])
def test_bad_input_gets_the_form_back_naming_the_field(client, seeded, ctx, fields, field, message):
    response = sign(client, RIKERS, **fields)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert f'id="{field}-error" role="alert"' in html and message in html
    # The field is marked and focused, so the browser scrolls to it; what was typed stays.
    tag = re.search(rf'<(input|textarea)[^>]*name="{field}"[^>]*>', html).group(0)
    assert 'aria-invalid="true"' in tag and "autofocus" in tag
    assert 'action="/actions/' in html and '/sign#sign"' in html
    if fields.get("email"):
        assert fields["email"] in html
    assert signatures() == []


def test_honeypot_answers_as_usual_and_stores_nothing(client, seeded, ctx):
    response = sign(client, RIKERS, name="Bot", email="bot@example.org", website="http://spam")
    assert response.status_code == 303 and response.headers["Location"].endswith("/thanks")
    assert signatures() == []


def test_closed_action_shows_final_count_and_accepts_nothing(client, seeded, ctx):
    sign(client, RIKERS, name="Ada", email="ada@example.org")
    token_page = page(client, RIKERS)
    action = db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))
    action.is_open = False
    db.session.commit()
    html = page(client, RIKERS)
    assert "This petition has closed" in html and "It closed with 1 signature." in html
    assert 'action="/actions/' not in html  # no form
    token = TOKEN_RE.search(token_page).group(1)
    late = client.post(f"/actions/{RIKERS}/sign", data={"csrf_token": token, "name": "Late",
                                                         "email": "late@example.org"})
    assert late.status_code == 409 and "has closed" in late.get_data(as_text=True)
    assert [s.email for s in signatures()] == ["ada@example.org"]


def test_an_action_hosted_elsewhere_takes_no_signatures_here(client, seeded, ctx):
    html = page(client, RIKERS)
    action = db.session.scalar(sa.select(Action).where(Action.slug == RIKERS))
    action.url = "https://petitions.example.net/rikers"
    db.session.commit()
    assert 'href="https://petitions.example.net/rikers"' in page(client, RIKERS)
    response = client.post(f"/actions/{RIKERS}/sign", data={
        "csrf_token": TOKEN_RE.search(html).group(1), "name": "A", "email": "a@example.org"})
    assert response.status_code == 409 and signatures() == []


def test_get_changes_nothing(client, seeded, ctx):
    assert client.get(f"/actions/{RIKERS}/sign").status_code == 405
    assert client.head(f"/actions/{RIKERS}/sign").status_code == 405
    no_token = client.post(f"/actions/{RIKERS}/sign", data={"name": "A", "email": "a@example.org"})
    assert no_token.status_code == 400
    assert signatures() == []


def test_comment_only_where_staff_allow_it(client, seeded, ctx):
    assert 'name="comment"' not in page(client, RIKERS)
    sign(client, RIKERS, name="Ada", email="ada@example.org", comment="ignored")
    action = db.session.scalar(sa.select(Action).where(Action.slug == PLEDGE))
    action.allow_comments = True
    db.session.commit()
    assert 'name="comment"' in page(client, PLEDGE)
    sign(client, PLEDGE, name="Ada", email="ada@example.org", comment="For my kids.")
    assert [s.comment for s in signatures()] == [None, "For my kids."]


def test_opt_in_joins_through_double_opt_in_never_silently(app, client, seeded, ctx, smtp, celery_worker):
    sign(client, RIKERS, name="No Box", email="nobox@example.org")
    sign(client, RIKERS, name="Box", email="box@example.org", opt_in="1")
    # The signup is recorded, then decided by its task (as POST /subscribe's is), which mails.
    [mail] = smtp.handler.wait_for(1, timeout=10)
    assert mail.rcpt_tos == ["box@example.org"] and "/confirm/" in link_in(mail, "/confirm/")
    db.session.rollback()
    subs = {s.email: s for s in db.session.scalars(sa.select(Subscriber))}
    assert set(subs) == {"box@example.org"} and subs["box@example.org"].status == "pending"
    assert subs["box@example.org"].consents[0].source == f"action:{RIKERS}"


# -- rate limits -----------------------------------------------------------------------------


def test_rate_limit_per_ip(app, client, seeded, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "SIGN_RATE_LIMIT", "3/minute")
    codes = [sign(client, RIKERS, name=f"P{i}", email=f"p{i}@example.org", ip="203.0.113.50").status_code
             for i in range(4)]
    assert codes == [303, 303, 303, 429]
    assert len(signatures()) == 3
    # Another address from another IP still signs.
    assert sign(client, RIKERS, name="Q", email="q@example.org", ip="203.0.113.51").status_code == 303


def test_rate_limit_per_address_whatever_the_ip(app, client, seeded, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "SIGN_ADDRESS_RATE_LIMIT", "2/minute")
    slugs = [signing_slug for signing_slug in db.session.scalars(sa.select(Action.slug).order_by(Action.id))]
    codes = [sign(client, slug, name="Ada", email="Ada@example.org" if i % 2 else "ada@EXAMPLE.org",
                  ip=f"203.0.113.{60 + i}").status_code for i, slug in enumerate(slugs[:3])]
    assert codes == [303, 303, 429]
    assert sign(client, slugs[2], name="Bob", email="bob@example.org", ip="203.0.113.70").status_code == 303


# -- one press from an alert ------------------------------------------------------------------


def _alert_with_deliveries(n: int = 2) -> tuple[int, list[tuple[int, int, str]]]:
    emails = add_confirmed(n, prefix="reader")
    alert_id = make_alert(slugs=[RIKERS, PLEDGE])
    blasts.start_blast(alert_id)
    rows = db.session.execute(
        sa.select(Delivery.id, Subscriber.id, Subscriber.email).join(Subscriber)
        .where(Delivery.alert_id == alert_id).order_by(Delivery.id)).all()
    assert [r[2] for r in rows] == emails
    return alert_id, [tuple(r) for r in rows]


def _links(alert_id: int, delivery_id: int | None, subscriber_id: int | None, email: str) -> list[str]:
    from alerts.models import Alert

    factory = blasts.MessageFactory.for_alert(db.session.get(Alert, alert_id))
    # Where each action button leads (with TRACK_CLICKS on, through /r/, which keeps the query).
    return [u for u in factory.action_urls(delivery_id, subscriber_id).values()
            if u.startswith("https://alerts.example.org/actions/")]


def test_every_action_link_carries_one_reference_per_recipient(app, ctx):
    alert_id, rows = _alert_with_deliveries(2)
    first, second = (_links(alert_id, *row) for row in rows)
    assert len(first) == 2
    refs = [parse_qs(urlsplit(u).query)["r"][0] for u in first]
    assert len(set(refs)) == 1 and references.read_reference(refs[0]).delivery_id == rows[0][0]
    assert parse_qs(urlsplit(second[0]).query)["r"][0] != refs[0]
    # A staff test send names nobody.
    assert all("?r=" not in u for u in _links(alert_id, None, None, "staff@example.org"))


def test_one_press_from_an_alert_after_an_earlier_signature(app, client, seeded, ctx):
    alert_id, [(delivery_id, subscriber_id, email), _] = _alert_with_deliveries(2)
    rikers_link, pledge_link = _links(alert_id, delivery_id, subscriber_id, email)
    path = urlsplit(rikers_link)
    html = client.get(f"{path.path}?{path.query}").get_data(as_text=True)
    # Greeted by masked address only; the form needs their name (none known yet).
    assert "Signing as <strong>r…@example.org</strong>" in html and email not in html
    assert 'name="name"' in html and 'name="email"' not in html
    response = sign(client, RIKERS, query=parse_qs(path.query), name="Rea Der",
                    r=parse_qs(path.query)["r"][0])
    assert response.status_code == 303
    [row] = signatures(RIKERS)
    assert (row.email, row.subscriber_id, row.source, row.alert_id, row.delivery_id) == (
        email, subscriber_id, "alert", alert_id, delivery_id)
    # The next action: the name is known, so the form is one button.
    q = parse_qs(urlsplit(pledge_link).query)
    html = page(client, PLEDGE, r=q["r"][0])
    assert 'name="name"' not in html and ">Sign the Pledge</button>" in html and "Rea Der" not in html
    assert sign(client, PLEDGE, query={"r": q["r"][0]}, r=q["r"][0]).status_code == 303
    [pledge] = signatures(PLEDGE)
    assert (pledge.name, pledge.source, pledge.delivery_id) == ("Rea Der", "alert", delivery_id)


def test_reference_pages_are_private(client, seeded, ctx):
    alert_id, [(delivery_id, subscriber_id, email), _] = _alert_with_deliveries(2)
    ref = references.make_reference(delivery_id)
    response = client.get(f"/actions/{RIKERS}", query_string={"r": ref})
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_forwarded_alert_lets_the_friend_sign_as_themselves(client, seeded, ctx):
    alert_id, [(delivery_id, subscriber_id, email), _] = _alert_with_deliveries(2)
    ref = references.make_reference(delivery_id)
    html = page(client, RIKERS, r=ref)
    not_you = re.search(r'href="([^"]*not_me=1[^"]*)">not you\?</a>', html).group(1).replace("&amp;", "&")
    friend_page = client.get(not_you).get_data(as_text=True)
    assert "Signing as" not in friend_page and 'name="email"' in friend_page
    assert sign(client, RIKERS, query=parse_qs(urlsplit(not_you).query), r=ref, not_me="1",
                name="Friend", email="friend@example.org").status_code == 303
    [row] = signatures(RIKERS)
    assert (row.email, row.subscriber_id, row.source, row.alert_id, row.delivery_id) == (
        "friend@example.org", None, "share", alert_id, None)


@pytest.mark.parametrize("tamper", ["flip", "altered-tag", "truncated", "unsubscribe-as-reference"])
def test_tampered_and_cross_purpose_references_grant_nothing(client, seeded, ctx, tamper):
    alert_id, [(delivery_id, subscriber_id, email), _] = _alert_with_deliveries(2)
    good = references.make_reference(delivery_id)
    bad = {
        "flip": f"{delivery_id + 1}.{good.split('.')[1]}",
        "altered-tag": f"{delivery_id}.{good.split('.')[1][:-1]}A" if not good.endswith("A")
        else f"{delivery_id}.{good.split('.')[1][:-1]}B",
        "truncated": good[:-3],
        "unsubscribe-as-reference": make_unsubscribe_token(subscriber_id),
    }[tamper]
    html = page(client, RIKERS, r=bad)
    assert "Signing as" not in html and 'name="email"' in html
    response = sign(client, RIKERS, query={"r": bad}, r=bad, name="Mallory")
    assert response.status_code == 400
    assert "Please enter your email address." in response.get_data(as_text=True)
    assert signatures() == []


def test_a_reference_is_not_an_unsubscribe_link(client, seeded, ctx):
    _alert_id, [(delivery_id, _sid, _email), _] = _alert_with_deliveries(2)
    ref = references.make_reference(delivery_id)
    assert client.get(f"/unsubscribe/{ref}").status_code == 400
    assert client.post(f"/unsubscribe/{ref}", data={"List-Unsubscribe": "One-Click"}).status_code == 400
    db.session.rollback()
    assert {s.status for s in db.session.scalars(sa.select(Subscriber))} == {"confirmed"}


def test_reference_of_an_erased_subscriber_greets_nobody(client, seeded, ctx):
    _alert_id, [(delivery_id, subscriber_id, _email), _] = _alert_with_deliveries(2)
    privacy_steps.erase_subscriber(subscriber_id, by="subscriber")
    html = page(client, RIKERS, r=references.make_reference(delivery_id))
    assert "Signing as" not in html


def test_tracking_off_keeps_the_alert_but_not_the_delivery(app, client, seeded, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "TRACK_CLICKS", "off")
    alert_id, [(delivery_id, _sid, _email), _] = _alert_with_deliveries(2)
    ref = references.make_reference(delivery_id)
    assert sign(client, RIKERS, query={"r": ref}, r=ref, name="Rea").status_code == 303
    [row] = signatures(RIKERS)
    assert (row.source, row.alert_id, row.delivery_id) == ("alert", alert_id, None)


def test_references_survive_key_rotation(app, ctx, monkeypatch):
    old = references.make_reference(42)
    monkeypatch.setitem(app.config, "SECRET_KEYS", ["new-key", *app.config["SECRET_KEYS"]])
    assert references.read_reference(old).delivery_id == 42
    assert references.make_reference(42) != old
    monkeypatch.setitem(app.config, "SECRET_KEYS", ["new-key"])
    assert references.read_reference(old) is None


# -- confirmation, where the action asks for it -----------------------------------------------


def test_confirmation_flags_until_the_link_is_pressed(app, client, seeded, ctx, smtp, celery_worker):
    action = db.session.scalar(sa.select(Action).where(Action.slug == PLEDGE))
    action.requires_confirmation = True
    db.session.commit()
    response = sign(client, PLEDGE, name="Ada", email="ada@example.org")
    assert response.headers["Location"].endswith("/thanks?check=1")
    assert "check your inbox" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert count(PLEDGE) == 0 and signatures()[0].confirmed_at is None
    [mail] = smtp.handler.wait_for(1, timeout=10)
    link = link_in(mail, "/actions/confirm/")
    path = urlsplit(link).path
    assert client.get(path).status_code == 200 and count(PLEDGE) == 0  # GET changes nothing
    assert client.post(path).status_code == 200 and count(PLEDGE) == 1
    assert client.post(path).status_code == 200 and count(PLEDGE) == 1  # idempotent
    assert client.post(path[:-2] + "xx").status_code == 400
    # Signing twice sends no second email; a signature from an alert counts at once.
    sign(client, PLEDGE, name="Ada", email="ada@example.org", ip="198.51.100.21")
    _alert_id, [(delivery_id, _sid, email), _] = _alert_with_deliveries(2)
    ref = references.make_reference(delivery_id)
    assert sign(client, PLEDGE, query={"r": ref}, r=ref, name="Rea").headers["Location"].endswith("/thanks")
    assert count(PLEDGE) == 2
    assert len(smtp.handler.messages) == 1


def test_a_confirmation_that_could_not_be_queued_is_sent_by_the_sweep(app, client, seeded, ctx, smtp,
                                                                      celery_worker, monkeypatch):
    """The broker is away when the form is posted: the signer gets the usual answer, the
    signature is flagged, and the next sweep queues its confirmation (once)."""
    from kombu.exceptions import OperationalError

    from alerts import queueing, tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to redis: Connection refused.")

    db.session.execute(sa.update(Action).where(Action.slug == PLEDGE).values(requires_confirmation=True))
    db.session.commit()
    monkeypatch.setattr(queueing, "_send", broker_down)
    response = sign(client, PLEDGE, name="Una", email="una@example.org")
    assert response.headers["Location"].endswith("/thanks?check=1")
    [signature] = signatures()
    assert signature.confirmation_unqueued and signature.confirmed_at is None
    monkeypatch.undo()
    assert tasks.sweep.run()["signature_confirmations_queued"] == 1
    [mail] = smtp.handler.wait_for(1, timeout=20)
    assert mail.rcpt_tos == ["una@example.org"] and link_in(mail, "/actions/confirm/")
    assert not signatures()[0].confirmation_unqueued
    assert tasks.sweep.run()["signature_confirmations_queued"] == 0  # claimed once, not again


# -- privacy -----------------------------------------------------------------------------------


def test_download_includes_signatures_and_erasure_anonymises_them(client, seeded, ctx):
    [email] = add_confirmed(1, prefix="private")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    sign(client, RIKERS, name="Pri Vate", email=email.upper().replace("EXAMPLE.ORG", "example.org"),
         postal_code="10001")
    sign(client, PLEDGE, name="Other", email="other@example.org")
    data = privacy_steps.export_subscriber_data(sub_id)
    assert [(s["action"], s["name"], s["postal_code"]) for s in data["signatures"]] == [
        (RIKERS, "Pri Vate", "10001")]
    before = count(RIKERS)
    privacy_steps.erase_subscriber(sub_id, by="subscriber")
    rows = signatures(RIKERS)
    assert [(r.email, r.name, r.postal_code, r.subscriber_id) for r in rows] == [("", "", None, None)]
    assert email.split("@")[0] not in rows[0].email_key
    assert count(RIKERS) == before  # the petition keeps its count
    assert [r.name for r in signatures(PLEDGE)] == ["Other"]


def test_same_answer_whatever_the_address_state_and_no_mail_to_suppressed(
    app, client, seeded, ctx, smtp, celery_worker
):
    from tests.helpers import bounces

    action = db.session.scalar(sa.select(Action).where(Action.slug == PLEDGE))
    action.requires_confirmation = True
    db.session.commit()
    add_confirmed(1, prefix="member")
    bounces.suppress("blocked@example.org", "hard-bounce", "550 no such user")
    answers = {
        email: sign(client, PLEDGE, name="Someone", email=email, ip=f"198.51.100.{30 + i}")
        for i, email in enumerate(["stranger@example.org", "member00000@example.org", "blocked@example.org"])
    }
    assert {(r.status_code, r.headers["Location"]) for r in answers.values()} == {
        (303, f"/actions/{PLEDGE}/thanks?check=1")}
    smtp.handler.wait_for(2, timeout=10)
    celery_worker.wait_idle()  # the suppressed address's task has run by now, too
    assert sorted(m.rcpt_tos[0] for m in smtp.handler.messages) == [
        "member00000@example.org", "stranger@example.org"]
    assert count(PLEDGE) == 0


def test_a_confirmation_link_is_dead_once_its_signer_is_erased(client, seeded, ctx):
    action = db.session.scalar(sa.select(Action).where(Action.slug == PLEDGE))
    action.requires_confirmation = True
    db.session.commit()
    [email] = add_confirmed(1, prefix="eraseme")
    sub_id = db.session.scalar(sa.select(Subscriber.id).where(Subscriber.email == email))
    sign(client, PLEDGE, name="Era Sed", email=email)
    [flagged] = signatures(PLEDGE)
    path = f"/actions/confirm/{signing.make_confirm_token(flagged.id)}"
    assert client.get(path).status_code == 200  # live until the erasure
    privacy_steps.erase_subscriber(sub_id, by="subscriber")
    db.session.commit()
    for response in (client.get(path), client.post(path)):
        assert response.status_code == 400
        assert "This link doesn’t work" in response.get_data(as_text=True)
    assert count(PLEDGE) == 0 and signatures(PLEDGE)[0].confirmed_at is None
