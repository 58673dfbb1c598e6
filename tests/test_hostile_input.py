"""Hostile input where a person or an operator types: a clear 4xx or CLI error, never a 500."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from alerts.extensions import db
from alerts.models import Subscriber
from tests.helpers import csrf_token

# -- NUL characters (PostgreSQL refuses them in a string; the guard runs before the database) --


@pytest.mark.parametrize("path", [
    "/confirm/abc%00def", "/unsubscribe/x%00", "/?ref=a%00b", "/subscribe?email=%00",
    "/staff/subscribers?q=ann%00", "/static/staff%00.js",
])
def test_a_nul_in_the_path_or_the_query_is_a_400(client, path):
    response = client.get(path)
    assert response.status_code == 400, path
    assert "NUL character" in response.get_data(as_text=True)


def test_a_nul_in_a_form_field_is_a_400_and_nothing_is_written(app, client):
    token = csrf_token(client)
    response = client.post("/subscribe", data={"email": "ann\x00@example.org", "website": "",
                                               "csrf_token": token})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    response = client.post("/subscribe", data={"email": "ann@example.org", "web\x00site": "",
                                               "csrf_token": token})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Subscriber)) == 0


def test_a_nul_in_a_json_body_is_a_400(client):
    response = client.post("/subscribe", json={"email": ["a@example.org", {"k": "v\x00"}]},
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
