"""Letters to decision-makers: each counted signature reaches each target once, from the
organisation's domain on the signer's behalf; digests, refusals, retries, leases, bounces,
placeholders, erasure, and what the signer and staff see."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import timedelta

import dkim
import pytest
import sqlalchemy as sa

from alerts.actions import catalog, letters, references, signing
from alerts.actions import targets as targets_
from alerts.bounces import processing
from alerts.extensions import db
from alerts.mail import signed_ids
from alerts.models import Action, Delivery, LetterDelivery, Signature, Subscriber, utcnow
from alerts.subscribers import privacy
from tests.helpers import add_confirmed, blasts, make_alert
from tests.test_blasts import dkim_key, dns_for  # noqa: F401 - dkim_key is a fixture
from tests.test_bounces import report
from tests.test_signing import sign

SENATOR = "Jane Roe, Senator <jane.roe@senate.example.gov>"
REPRESENTATIVE = "John Doe, Representative <john.doe@house.example.gov>"


def letter_action(*lines: str, own_words: bool = True, confirm: bool = False,
                  slug: str = "write-congress") -> Action:
    action = catalog.save(
        None, title="Write to Congress for Every Child", slug=slug, summary="Ask Congress to pass ECDFA.",
        call_to_action="Send the Letter", kind="letter", url=None, is_open=True,
        allow_comments=own_words, requires_confirmation=confirm,
        letter_subject="Pass the Every Child Deserves a Family Act",
        letter_text="I urge you to pass the John Lewis Every Child Deserves a Family Act.\n\n"
                    "Every child deserves a safe and loving home.")
    db.session.flush()
    wanted = [targets_.parse(line, "letter") for line in lines or (SENATOR, REPRESENTATIVE)]
    targets_.set_targets(action, wanted)
    db.session.commit()
    return action


def rows(action_id: int | None = None) -> list[LetterDelivery]:
    db.session.rollback()
    return list(db.session.scalars(sa.select(LetterDelivery).order_by(LetterDelivery.id)))


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def body_text(message) -> str:
    return message.get_body(("plain",)).get_content().replace("\r\n", "\n")


SIGNERS = [("Ana Ruiz", "ana@example.net", "10001"), ("Ben Okafor", "ben@example.net", "10002"),
           ("Chen Li", "chen@example.net", "10003")]


def test_three_signers_reach_each_of_two_targets_exactly_once(app, ctx, client, smtp, celery_worker,
                                                                dkim_key):  # noqa: F811
    action = letter_action()
    for name, address, postal in SIGNERS:
        response = sign(client, action.slug, name=name, email=address, postal_code=postal,
                        comment=f"As a parent in {postal}, this matters to me.")
        assert response.status_code == 303
    celery_worker.wait_idle()
    received = smtp.handler.wait_for(6, timeout=20)
    assert len(received) == 6
    by_target: dict[str, list[str]] = {}
    for item in received:
        [to] = item.rcpt_tos
        message = parsed(item.data)
        by_target.setdefault(to, []).append(str(message["Reply-To"]))
        # From the organisation's own address, named for the signer; DKIM verifies for that domain.
        assert message["From"].addresses[0].addr_spec == "alerts@example.org"
        assert message["From"].addresses[0].display_name.endswith(" via Kids Rights Test Org")
        assert dkim.verify(item.data, dnsfunc=dns_for(dkim_key))
        assert b"d=example.org" in item.data.split(b"\r\n\r\n", 1)[0]
        assert message["Subject"] == "Pass the Every Child Deserves a Family Act"
        assert "List-Unsubscribe" not in message  # written to a decision-maker, not to a subscriber
        reply_to = message["Reply-To"].addresses[0]
        signer = next(s for s in SIGNERS if s[1] == reply_to.addr_spec)
        assert reply_to.display_name == signer[0]
        assert message["From"].addresses[0].display_name == f"{signer[0]} via Kids Rights Test Org"
        text = body_text(message)
        target_name = "Jane Roe" if to.startswith("jane") else "John Doe"
        assert text.startswith(f"Dear {target_name},")
        assert "Every child deserves a safe and loving home." in text
        assert f"As a parent in {signer[2]}, this matters to me." in text
        assert f"Sincerely,\n{signer[0]}\n{signer[2]}" in text
    assert sorted(by_target) == ["jane.roe@senate.example.gov", "john.doe@house.example.gov"]
    for replies in by_target.values():  # each signer once per target
        assert sorted(replies) == sorted(f"{n} <{a}>" for n, a, _ in SIGNERS)
    assert [r.status for r in rows()] == ["sent"] * 6
    assert all(r.message_id and r.sent_at for r in rows())
    # Beat's pass finds nothing more to send.
    assert letters.send_due().messages == 0
    assert len(smtp.handler.messages) == 6


def test_the_digest_sends_one_message_a_day_per_target_naming_every_signer(app, ctx, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "LETTER_DELIVERY", "digest")
    action = letter_action()
    for name, address, postal in SIGNERS:
        signing.sign(action, signing.Entry(name=name, email=address, postal_code=postal),
                     signer=None, where=signing.attribution(None, page_source=None, email=address),
                     request=_request())
    db.session.commit()
    waiting = rows()
    assert len(waiting) == 6 and {r.status for r in waiting} == {"queued"}
    due = waiting[0].due_at
    assert due > utcnow() and due.astimezone(letters.ZoneInfo("UTC")).hour == 17
    assert letters.send_due().messages == 0  # not before the digest's hour
    db.session.execute(sa.update(LetterDelivery).values(due_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    result = letters.send_due()
    assert (result.messages, result.sent) == (2, 6)
    received = smtp.handler.wait_for(2, timeout=10)
    assert sorted(r.rcpt_tos[0] for r in received) == ["jane.roe@senate.example.gov",
                                                       "john.doe@house.example.gov"]
    for item in received:
        message = parsed(item.data)
        assert message["Subject"] == "3 letters: Pass the Every Child Deserves a Family Act"
        assert "Reply-To" not in message
        text = body_text(message)
        for name, address, postal in SIGNERS:
            assert f"{name} <{address}>" in text and f"Sincerely,\n{name}\n{postal}" in text
        assert text.count("---- Letter ") == 3
    assert {r.status for r in rows()} == {"sent"}
    assert len({r.message_id for r in rows()}) == 2  # one message per target


def _request():
    from alerts.subscribers import subscriptions

    return subscriptions.Request(ip="198.51.100.9", user_agent="test", source="test")


def _sign(action: Action, name: str, address: str, comment: str = "") -> int:
    outcome = signing.sign(action, signing.Entry(name=name, email=address, comment=comment), signer=None,
                           where=signing.attribution(None, page_source=None, email=address),
                           request=_request())
    db.session.commit()
    return outcome.signature_id


def test_a_target_refusing_mail_is_shown_to_staff_and_the_others_still_get_theirs(
        app, ctx, smtp, staff_client):
    action = letter_action()
    smtp.handler.rcpt_reply = lambda a: "550 5.1.1 <john.doe@house.example.gov>: mailbox unavailable" \
        if a.startswith("john") else None
    _sign(action, "Ana Ruiz", "ana@example.net")
    result = letters.send_due()
    assert (result.sent, result.failed) == (1, 1)
    by_target = {r.target_id: r for r in rows()}
    statuses = sorted((r.status, r.smtp_reply) for r in by_target.values())
    assert statuses[0][0] == "failed" and "550 5.1.1" in statuses[0][1] and statuses[1][0] == "sent"
    page = staff_client.get(f"/staff/actions/{action.id}/signatures").get_data(as_text=True)
    figures = page[page.index('id="letters"'):]
    assert "Letters to each target" in figures
    assert "john.doe@house.example.gov" in figures and "550 5.1.1" in figures
    assert "mailbox unavailable" in figures
    row = re.search(r"<tr class=\"has-problem\">(.*?)</tr>", figures, re.S).group(1)
    assert "John Doe" in row
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)] == [0, 0, 1, 0]


def test_a_passing_refusal_is_tried_again_later_and_then_sent(app, ctx, smtp):
    action = letter_action(SENATOR)
    smtp.handler.rcpt_reply = lambda a: "451 4.3.0 try again later"
    _sign(action, "Ana Ruiz", "ana@example.net")
    assert letters.send_due().retried == 1
    [row] = rows()
    assert (row.status, row.attempts) == ("queued", 1) and row.due_at > utcnow() + timedelta(seconds=30)
    assert "451" in row.smtp_reply and not smtp.handler.messages
    smtp.handler.rcpt_reply = None
    assert letters.send_due().messages == 0  # not before its time
    db.session.execute(sa.update(LetterDelivery).values(due_at=utcnow()))
    db.session.commit()
    assert letters.send_due().sent == 1
    [row] = rows()
    assert (row.status, row.attempts) == ("sent", 2) and len(smtp.handler.messages) == 1


def test_a_throttling_relay_slows_the_pace_without_failing_a_letter(app, ctx, smtp):
    action = letter_action(SENATOR)
    smtp.handler.rcpt_reply = lambda a: "421 4.7.0 Throttling: sending rate exceeded"
    _sign(action, "Ana Ruiz", "ana@example.net")
    letters.send_due()
    [row] = rows()
    assert row.status == "queued" and "4.7.0" in row.smtp_reply
    from alerts.mail import pacing
    state = pacing.for_url(app.config["REDIS_URL"]).describe(
        signed_ids_relay_name(app), pacing.Limits())
    assert state["push_backs"] == 1 and state["state"] == "throttled"  # the relay's shared pace knows


def signed_ids_relay_name(app) -> str:
    from alerts.mail import smtp as smtp_

    return smtp_.parse_relays(app.config["SMTP_URL"])[0].name


def test_a_worker_killed_mid_send_leaves_its_letters_to_the_next_claim_once(app, ctx, smtp):
    action = letter_action()
    _sign(action, "Ana Ruiz", "ana@example.net")
    claimed = letters.claim()
    db.session.commit()
    assert len(claimed) == 2
    # The worker dies here. While its lease runs, nobody else takes the letters.
    assert letters.send_due().messages == 0 and not smtp.handler.messages
    db.session.execute(sa.update(LetterDelivery).values(lease_until=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert letters.send_due().sent == 2
    assert sorted(r.rcpt_tos[0] for r in smtp.handler.messages) == [
        "jane.roe@senate.example.gov", "john.doe@house.example.gov"]
    assert letters.send_due().messages == 0 and len(smtp.handler.messages) == 2
    assert {(r.status, r.attempts) for r in rows()} == {("sent", 2)}


def test_two_claims_never_hold_the_same_letter(app, ctx):
    action = letter_action()
    for n in range(5):
        _sign(action, f"Signer {n}", f"s{n}@example.net")
    first = letters.claim(limit=6)
    second = letters.claim(limit=100)
    db.session.commit()
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)


def test_placeholder_targets_hold_the_letters_until_staff_replace_them(app, ctx, smtp):
    action = letter_action("Your Senators, U.S. Senate <senators@example.org> [placeholder]")
    _sign(action, "Ana Ruiz", "ana@example.net")
    assert rows() == [] and letters.send_due().messages == 0
    # The thank-you page does not pretend it went anywhere.
    thanks = app.test_client().get(f"/actions/{action.slug}/thanks").get_data(as_text=True)
    assert "yours goes out as soon as we have" in thanks
    action = db.session.get(Action, action.id)
    targets_.set_targets(action, [targets_.parse(SENATOR, "letter")])
    assert letters.release_placeholders(action.id) == 1
    db.session.commit()
    assert letters.send_due().sent == 1
    [item] = smtp.handler.messages
    assert item.rcpt_tos == ["jane.roe@senate.example.gov"]
    assert letters.release_placeholders(action.id) == 0  # never twice


def test_a_letter_that_needs_confirmation_goes_only_once_confirmed(app, ctx, client, smtp):
    action = letter_action(SENATOR, confirm=True)
    response = sign(client, action.slug, name="Ana Ruiz", email="ana@example.net")
    assert "check=1" in response.headers["Location"]
    assert rows() == []
    [signature] = db.session.scalars(sa.select(Signature)).all()
    signing.confirm_signature(signing.make_confirm_token(signature.id))
    db.session.commit()
    assert [r.status for r in rows()] == ["queued"]
    assert letters.send_due().sent == 1


def test_one_press_from_an_alert_sends_the_readers_letter(app, ctx, client, smtp):
    action = letter_action(SENATOR)
    [reader] = add_confirmed(1, prefix="reader")
    db.session.execute(sa.update(Subscriber).values(first_name="Rea", last_name="Der"))
    db.session.commit()
    alert_id = make_alert(slugs=[action.slug])
    blasts.start_blast(alert_id)
    delivery_id = db.session.scalar(sa.select(Delivery.id).where(Delivery.alert_id == alert_id))
    ref = references.make_reference(delivery_id)
    html = client.get(f"/actions/{action.slug}", query_string={"r": ref}).get_data(as_text=True)
    assert 'name="email"' not in html and ">Send the Letter</button>" in html
    assert sign(client, action.slug, query={"r": ref}, r=ref, name="Rea Der").status_code == 303
    [signature] = db.session.scalars(sa.select(Signature)).all()
    assert (signature.source, signature.alert_id) == ("alert", alert_id)
    assert letters.send_due().sent == 1
    item = next(m for m in smtp.handler.messages if m.rcpt_tos == ["jane.roe@senate.example.gov"])
    assert parsed(item.data)["Reply-To"].addresses[0].addr_spec == reader


def test_a_bounce_report_marks_the_letter_bounced_for_staff(app, ctx, smtp, monkeypatch):
    monkeypatch.setitem(app.config, "BOUNCE_DOMAIN", "bounce.example.org")
    action = letter_action(SENATOR)
    _sign(action, "Ana Ruiz", "ana@example.net")
    assert letters.send_due().sent == 1
    [item] = smtp.handler.messages
    assert item.mail_from.startswith("bounces+l")  # the VERP return path names the letter
    [row] = rows()
    assert signed_ids.parse_return_path(item.mail_from).ident == row.id
    raw = report("gmail_hard.eml", rcpt="jane.roe@senate.example.gov", verp_addr=item.mail_from,
                 message_id=row.message_id)
    outcome = processing.process(raw, source="test")
    db.session.commit()
    assert outcome.matched and outcome.events == ["letter to a target marked bounced"]
    [row] = rows()
    assert row.status == "bounced" and "hard" in row.smtp_reply
    [figure] = letters.figures(action.id)
    assert (figure.sent, figure.bounced, figure.last_status) == (0, 1, "bounced")
    # A forged return path changes nothing.
    forged = item.mail_from.replace(item.mail_from.split("-")[-1].split("@")[0], "0000000000")
    assert signed_ids.parse_return_path(forged) is None


def test_an_erased_signers_letter_that_has_not_gone_is_never_sent(app, ctx, smtp):
    action = letter_action(SENATOR)
    [address] = add_confirmed(1, prefix="gone")
    sub_id = db.session.scalar(sa.select(Subscriber.id))
    _sign(action, "Gone Person", address)
    assert privacy.erase_subscriber(sub_id, by="subscriber")
    db.session.commit()
    assert letters.send_due().messages == 0 and not smtp.handler.messages
    [row] = rows()
    assert row.status == "failed" and "erased" in row.smtp_reply


@pytest.mark.parametrize("name", ["Eve\r\nBcc: victim@example.com", "Eve\nSubject: hijacked",
                                  "=?utf-8?b?RXZl?= <evil@example.com>", "Zoë \"Z\" Müller, Jr."])
def test_a_signers_name_cannot_add_headers_or_forge_an_address(app, ctx, smtp, name):
    action = letter_action(SENATOR)
    _sign(action, name, "eve@example.net")
    assert letters.send_due().sent == 1
    [item] = smtp.handler.messages
    head = item.data.split(b"\r\n\r\n", 1)[0].decode()
    assert "\nBcc:" not in head and head.count("\nSubject:") == 1
    message = parsed(item.data)
    assert message["Subject"] == "Pass the Every Child Deserves a Family Act"
    assert [a.addr_spec for a in message["From"].addresses] == ["alerts@example.org"]
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["eve@example.net"]
    assert item.rcpt_tos == ["jane.roe@senate.example.gov"]


def test_the_letter_page_shows_the_targets_and_the_letter_and_the_thanks_names_them(app, ctx, client):
    action = letter_action(SENATOR, "Placeholder Person, Title <p@example.org> [placeholder]")
    html = client.get(f"/actions/{action.slug}").get_data(as_text=True)
    assert "Your letter goes by email to:" in html and "<strong>Jane Roe</strong>, Senator" in html
    assert "Placeholder Person" not in html  # placeholders are for staff to replace, not to show
    assert "Pass the Every Child Deserves a Family Act" in html and "Every child deserves a safe" in html
    assert "Add your own words" in html and ">Send the Letter</button>" in html
    response = sign(client, action.slug, name="Ana Ruiz", email="ana@example.net")
    thanks = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "your letter is on its way" in thanks and "<strong>Jane Roe</strong>, Senator" in thanks
    spanish = client.get(f"/actions/{action.slug}?lang=es").get_data(as_text=True)
    assert "Su carta se envía por correo electrónico a:" in spanish
    assert "La carta se envía en inglés" in spanish


def test_own_words_are_left_out_where_the_letter_takes_none(app, ctx, smtp):
    action = letter_action(SENATOR, own_words=False)
    _sign(action, "Ana Ruiz", "ana@example.net", comment="")
    letters.send_due()
    [item] = smtp.handler.messages
    assert "Sincerely,\nAna Ruiz" in body_text(parsed(item.data))


def test_a_petition_signature_makes_no_letters(app, ctx):
    action = catalog.save(None, title="A petition", slug="a-petition", summary="s", call_to_action="Sign",
                          kind="petition", url=None, is_open=True)
    db.session.commit()
    _sign(action, "Ana Ruiz", "ana@example.net")
    assert rows() == []


def test_the_digest_hour_is_read_in_the_organisations_time_zone(app, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "ORG_TIMEZONE", "America/New_York")
    monkeypatch.setitem(app.config, "LETTER_DIGEST_HOUR", 17)
    from datetime import UTC, datetime

    noon_winter = datetime(2026, 12, 8, 17, 0, tzinfo=UTC)  # 12:00 in New York
    assert letters.next_digest_time(noon_winter) == datetime(2026, 12, 8, 22, 0, tzinfo=UTC)
    evening = datetime(2026, 12, 8, 23, 0, tzinfo=UTC)  # 18:00 in New York: tomorrow's
    assert letters.next_digest_time(evening) == datetime(2026, 12, 9, 22, 0, tzinfo=UTC)


def test_a_letter_signed_while_the_broker_is_away_is_sent_by_the_next_pass(app, ctx, client, smtp,
                                                                           monkeypatch):
    from alerts import queueing

    action = letter_action(SENATOR)

    def broker_down(task_name, args):
        raise ConnectionError("Redis is not answering")

    monkeypatch.setattr(queueing, "_send", broker_down)
    assert sign(client, action.slug, name="Ana Ruiz", email="ana@example.net").status_code == 303
    monkeypatch.undo()
    [row] = rows()
    assert row.status == "queued"  # kept in the database, not in the lost task
    assert letters.send_due().sent == 1 and len(smtp.handler.messages) == 1


def test_a_relay_that_does_not_answer_leaves_the_letter_queued_for_later(app, ctx, smtp, monkeypatch):
    from alerts.mail.smtp import free_port

    action = letter_action(SENATOR)
    _sign(action, "Ana Ruiz", "ana@example.net")
    monkeypatch.setitem(app.config, "SMTP_URL", f"smtp://127.0.0.1:{free_port()}")
    monkeypatch.setitem(app.config, "SMTP_TIMEOUT", 2)
    assert letters.send_due().retried == 1
    [row] = rows()
    assert row.status == "queued" and row.attempts == 1 and row.smtp_reply
    monkeypatch.undo()
    db.session.execute(sa.update(LetterDelivery).values(due_at=utcnow()))
    db.session.commit()
    assert letters.send_due().sent == 1


def test_replacing_a_placeholder_on_the_staff_form_sends_the_held_letters(app, staff_client, ctx, smtp):
    from tests.helpers import post
    from tests.test_action_kinds import LETTER

    created = post(staff_client, "/staff/actions/new", LETTER, page="/staff/actions/new")
    assert created.status_code == 303
    action = db.session.scalar(sa.select(Action).where(Action.title == LETTER["title"]))
    _sign(action, "Ana Ruiz", "ana@example.net")
    assert [r.target_id for r in rows()] == [targets_.real_targets(action.id)[0].id]  # the governor's only
    edit = f"/staff/actions/{action.id}/edit"
    replaced = ("Kathy Hochul, Governor <governor@example.org>\n"
                "Andrea Stewart-Cousins, Majority Leader <leader@example.org>")
    response = post(staff_client, edit, {**LETTER, "slug": action.slug, "targets": replaced}, page=edit)
    assert response.status_code == 303, response.get_data(as_text=True)[-3000:]
    assert "1 letter queued for the new targets." in staff_client.get("/staff/actions").get_data(as_text=True)
    assert len(rows()) == 2
    assert letters.send_due().sent == 2
    assert sorted(m.rcpt_tos[0] for m in smtp.handler.messages) == [
        "governor@example.org", "leader@example.org"]
