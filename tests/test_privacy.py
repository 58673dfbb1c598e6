"""A subscriber's data: the copy from the unsubscribe link, erasure, and what stays after it."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Alert, ConsentRecord, Delivery, Subscriber, Suppression, email_hash, utcnow
from tests.helpers import STAFF_EMAIL, csrf_token, link_in, subscribe, unsubscribe_token_for
from tests.helpers import privacy_steps as privacy

EMAIL = "Ada.Lovelace@example.org"


def signed_up_and_confirmed(app, client, smtp) -> int:
    """A subscriber made the real way: the form, the confirmation email, the button."""
    assert subscribe(client, EMAIL, headers={"User-Agent": "privacy-test-browser"}).status_code == 200
    [msg] = smtp.handler.wait_for(1, timeout=20)
    assert client.post(urlsplit(link_in(msg, "/confirm/")).path).status_code == 200
    smtp.handler.wait_for(2, timeout=20)  # the welcome email, before the test watches the inbox
    smtp.handler.clear()
    with app.app_context():
        sub = db.session.scalar(sa.select(Subscriber).where(Subscriber.email == EMAIL))
        assert sub.status == "confirmed"
        return sub.id


def add_delivery(app, sub_id: int, *, error: str | None = None) -> int:
    with app.app_context():
        alert = Alert(subject="Close Rikers now", state="sent")
        db.session.add(alert)
        db.session.flush()
        delivery = Delivery(alert_id=alert.id, subscriber_id=sub_id, status="sent", attempts=1,
                            sent_at=utcnow(), error=error)
        db.session.add(delivery)
        db.session.commit()
        return delivery.id


def token_for(app, sub_id: int) -> str:
    with app.app_context():
        return unsubscribe_token_for(sub_id)


def test_unsubscribe_pages_offer_the_data_links(app, client, smtp, celery_worker):
    sub_id = signed_up_and_confirmed(app, client, smtp)
    token = token_for(app, sub_id)
    page = client.get(f"/unsubscribe/{token}").get_data(as_text=True)
    assert f"/unsubscribe/{token}/data.json" in page and f"/unsubscribe/{token}/erase" in page
    done = client.post(f"/unsubscribe/{token}").get_data(as_text=True)
    assert "unsubscribed" in done
    assert f"/unsubscribe/{token}/data.json" in done and f"/unsubscribe/{token}/erase" in done


def test_download_my_data_and_consent_stays_provable_after_unsubscribe(app, client, smtp, celery_worker):
    sub_id = signed_up_and_confirmed(app, client, smtp)
    add_delivery(app, sub_id)
    token = token_for(app, sub_id)
    assert client.post(f"/unsubscribe/{token}").status_code == 200

    response = client.get(f"/unsubscribe/{token}/data.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["subscriber"]["email"] == EMAIL
    assert data["subscriber"]["status"] == "unsubscribed"
    assert data["subscriber"]["unsubscribed_at"]
    events = [c["event"] for c in data["consent_records"]]
    assert events == ["signup", "confirm", "unsubscribe:link"]  # the proof outlives the unsubscribe
    signup = data["consent_records"][0]
    assert signup["ip"] == "198.51.100.7" and signup["user_agent"] == "privacy-test-browser"
    assert signup["consent_text_version"] == app.config["CONSENT_TEXT_VERSION"]
    assert data["deliveries"] == [
        {"alert_id": data["deliveries"][0]["alert_id"], "subject": "Close Rikers now", "status": "sent",
         "attempts": 1, "sent_at": data["deliveries"][0]["sent_at"], "error": None}
    ]
    assert "confirm_nonce" not in json.dumps(data)
    assert client.get("/unsubscribe/not-a-token/data.json").status_code == 400


def test_erase_then_a_new_signup_gets_the_same_page_and_no_email(app, client, smtp, celery_worker):
    sub_id = signed_up_and_confirmed(app, client, smtp)
    delivery_id = add_delivery(app, sub_id, error=f"451 try later <{EMAIL}>")
    token = token_for(app, sub_id)

    page = client.get(f"/unsubscribe/{token}/erase")
    assert page.status_code == 200 and "Erase my data" in page.get_data(as_text=True)
    # Without the form's token nothing happens.
    assert client.post(f"/unsubscribe/{token}/erase").status_code == 400
    erased = client.post(f"/unsubscribe/{token}/erase",
                         data={"csrf_token": csrf_token(client, f"/unsubscribe/{token}/erase")})
    assert erased.status_code == 200 and "Your data is erased" in erased.get_data(as_text=True)

    with app.app_context():
        assert db.session.get(Subscriber, sub_id) is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 0
        delivery = db.session.get(Delivery, delivery_id)
        assert (delivery.subscriber_id, delivery.error, delivery.status) == (None, None, "sent")
        (suppression,) = db.session.scalars(sa.select(Suppression))
        assert suppression.email_hash == email_hash(EMAIL)
        assert (suppression.email, suppression.reason) == (None, "erased")
        assert "subscriber" in suppression.detail and EMAIL.lower() not in suppression.detail.lower()

    # The links now find nothing, and say so.
    assert client.get(f"/unsubscribe/{token}/data.json").status_code == 404
    assert client.get(f"/unsubscribe/{token}/erase").status_code == 404
    again = client.post(f"/unsubscribe/{token}/erase",
                        data={"csrf_token": csrf_token(client, "/")})
    assert again.status_code == 200  # a second click ends on the same page
    assert client.post(f"/unsubscribe/{token}").status_code == 200  # unsubscribe stays harmless

    # A new signup for the address: the page anyone gets, no email, no subscriber.
    known = subscribe(client, EMAIL)
    fresh = subscribe(client, "someone.else@example.org")
    assert known.status_code == fresh.status_code == 200
    assert known.get_data(as_text=True).replace(EMAIL, "ADDRESS") == \
        fresh.get_data(as_text=True).replace("someone.else@example.org", "ADDRESS")
    # No task is even queued for the erased address (the suppression check is made before
    # anything is written), so the other address's email is the only one to arrive.
    received = smtp.handler.wait_for(1, timeout=20)
    assert [m.rcpt_tos for m in received] == [["someone.else@example.org"]]
    with app.app_context():
        assert db.session.scalar(sa.select(Subscriber).where(Subscriber.email == EMAIL)) is None


def test_erase_takes_over_an_existing_suppression_and_forgets_its_address(app, ctx):
    sub = Subscriber(email="bounced@example.org", status="confirmed")
    db.session.add(sub)
    db.session.add(Suppression(email_hash=email_hash("bounced@example.org"), email="bounced@example.org",
                               reason="hard-bounce", detail="550 5.1.1 <bounced@example.org> unknown"))
    db.session.commit()
    assert privacy.erase_subscriber(sub.id, by="staff:someone@example.org") is True
    assert privacy.erase_subscriber(sub.id, by="staff:someone@example.org") is False
    (suppression,) = db.session.scalars(sa.select(Suppression))
    assert (suppression.email, suppression.reason) == (None, "erased")
    assert "bounced@example.org" not in suppression.detail
    assert "hard-bounce" in suppression.detail and "staff:someone@example.org" in suppression.detail
    assert privacy.export_subscriber_data(sub.id) is None


def test_staff_see_download_and_erase_a_subscriber(app, staff_client):
    with app.app_context():
        sub = Subscriber(email="grace@example.org", status="confirmed", source="Paper petition")
        sub.consents.append(ConsentRecord(event="import:documented", source="Paper petition",
                                          consent_text_version="v1"))
        db.session.add(sub)
        db.session.commit()
        sub_id = sub.id
    add_delivery(app, sub_id)

    page = staff_client.get(f"/staff/subscribers/{sub_id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "grace@example.org" in body and "import:documented" in body and "Close Rikers now" in body
    download = staff_client.get(f"/staff/subscribers/{sub_id}/data.json")
    assert download.status_code == 200 and "attachment" in download.headers["Content-Disposition"]
    assert json.loads(download.get_data(as_text=True))["subscriber"]["email"] == "grace@example.org"

    confirm = staff_client.get(f"/staff/subscribers/{sub_id}/erase")
    assert confirm.status_code == 200 and "Erase for good" in confirm.get_data(as_text=True)
    path = f"/staff/subscribers/{sub_id}/erase"
    erased = staff_client.post(path, data={"csrf_token": csrf_token(staff_client, path)})
    assert erased.status_code == 303 and erased.headers["Location"] == "/staff/subscribers"
    assert "Erased." in staff_client.get("/staff/subscribers").get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Subscriber, sub_id) is None
        suppression = db.session.scalar(sa.select(Suppression))
        assert suppression.reason == "erased" and f"staff:{STAFF_EMAIL}" in suppression.detail
    assert staff_client.get(f"/staff/subscribers/{sub_id}").status_code == 404
    assert staff_client.get(f"/staff/subscribers/{sub_id}/data.json").status_code == 404


def test_staff_privacy_pages_need_a_login(app, client):
    with app.app_context():
        sub = Subscriber(email="x@example.org", status="confirmed")
        db.session.add(sub)
        db.session.commit()
        sub_id = sub.id
    assert client.get(f"/staff/subscribers/{sub_id}").status_code == 302
    assert client.get(f"/staff/subscribers/{sub_id}/data.json").status_code == 302
    assert client.post(f"/staff/subscribers/{sub_id}/erase").status_code in (400, 401)
    with app.app_context():
        assert db.session.get(Subscriber, sub_id) is not None
