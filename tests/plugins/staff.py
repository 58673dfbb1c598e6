"""A staff account, and a client logged in with it as a browser would."""

from __future__ import annotations

import pytest

from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, log_in


@pytest.fixture
def staff(app):
    """A staff account (its address)."""
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD)
    return STAFF_EMAIL


@pytest.fixture
def staff_client(client, staff):
    response = log_in(client)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client
