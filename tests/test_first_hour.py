"""The first hour of a visitor, a staff member and an operator: the rough edges, held by tests."""

from __future__ import annotations

import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import ConsentRecord, Subscriber
from alerts.subscribers import privacy
from alerts.subscribers.tokens import make_confirm_token, make_unsubscribe_token
from tests.conftest import csrf_token, subscribe


def _add(app, email: str, status: str, nonce: str | None = None) -> int:
    with app.app_context():
        sub = Subscriber(email=email, status=status, confirm_nonce=nonce)
        db.session.add(sub)
        db.session.commit()
        return sub.id


def test_signup_redirects_after_post_and_echoes_the_address(app, client):
    resp = subscribe(client, "typo@exmaple.org", follow=False)
    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/subscribe")
    page = client.get("/subscribe")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Check your inbox" in text and "typo@exmaple.org" in text
    # Reloading the answer page is a GET: it posts nothing, so no second consent record.
    client.get("/subscribe")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ConsentRecord)) == 1


def test_answer_page_without_a_signup_goes_to_the_form(client):
    resp = client.get("/subscribe")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/#advocate")


def test_a_bad_address_answers_at_the_form(client):
    """The 400 page is addressed to the form's anchor and focuses the field (no scroll hunt)."""
    token = csrf_token(client)
    resp = client.post("/subscribe", data={"email": "a@b", "csrf_token": token})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert 'action="/subscribe#advocate"' in page
    assert 'id="email-error"' in page and "autofocus" in page
    # The browser checks the address too before posting: the form is not `novalidate`.
    assert "novalidate" not in page.split('id="advocate"', 1)[1].split("</form>", 1)[0]


def test_a_used_confirmation_link_says_so_on_get_and_changes_nothing(app, client):
    sub_id = _add(app, "used@example.org", "pending", nonce="n1")
    with app.app_context():
        token = make_confirm_token(sub_id, "n1")
    first = client.get(f"/confirm/{token}")
    assert "Confirm your subscription" in first.get_data(as_text=True)
    assert client.post(f"/confirm/{token}").status_code == 200
    again = client.get(f"/confirm/{token}")
    assert again.status_code == 200
    assert "already subscribed" in again.get_data(as_text=True)
    assert "<form" not in again.get_data(as_text=True).split("<main", 1)[1]
    with app.app_context():
        events = db.session.scalars(sa.select(ConsentRecord.event)).all()
    assert events == ["confirm"]  # the GET recorded nothing


def test_a_superseded_confirmation_link_says_used_on_get(app, client):
    sub_id = _add(app, "twice@example.org", "pending", nonce="new")
    with app.app_context():
        token = make_confirm_token(sub_id, "old")
    resp = client.get(f"/confirm/{token}")
    assert resp.status_code == 410 and "already been used" in resp.get_data(as_text=True)


def test_after_erasure_the_unsubscribe_link_says_the_data_is_gone(app, client):
    sub_id = _add(app, "erased@example.org", "confirmed")
    with app.app_context():
        token = make_unsubscribe_token(sub_id)
        privacy.erase_subscriber(sub_id, by="test")
        db.session.commit()
    for path in (f"/unsubscribe/{token}", f"/unsubscribe/{token}/data.json", f"/unsubscribe/{token}/erase"):
        resp = client.get(path)
        page = resp.get_data(as_text=True)
        assert resp.status_code == 404, path
        assert "Your data is gone" in page, path
        assert "Nothing to show" not in page
        assert "<button" not in page and "Download my data" not in page, path
    after_post = client.post(f"/unsubscribe/{token}").get_data(as_text=True)
    assert "Download my data" not in after_post and "Erase my data" not in after_post


def test_favicon(client):
    resp = client.get("/favicon.ico")
    assert resp.status_code == 200 and resp.mimetype == "image/svg+xml"
    assert b"<svg" in resp.data
    assert 'rel="icon"' in client.get("/").get_data(as_text=True)
