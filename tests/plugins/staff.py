"""A staff account, and a client logged in with it as a browser would."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import STAFF_EMAIL, STAFF_PASSWORD, create_staff, log_in, seed_actions


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing():
    """argon2id at its cheapest in tests, as Django's test settings swap their hasher: the
    production cost (64 MiB, three passes: 0.18 s a hash and its check) was paid by every
    test that logs in. `test_staff.py` checks the production parameters themselves."""
    from argon2 import PasswordHasher, profiles

    from alerts import accounts

    production = accounts._argon2
    cheap = (PasswordHasher.from_parameters(profiles.CHEAPEST), production()[1])
    accounts._argon2 = lambda: cheap
    accounts._dummy_hash.cache_clear()
    yield production
    accounts._argon2 = production
    accounts._dummy_hash.cache_clear()


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


@pytest.fixture
def seeded_staff_client(app, staff_client):
    """A logged-in client, with the seven actions seeded (pages about actions and signers)."""
    with app.app_context():
        seed_actions()
    return staff_client


@pytest.fixture
def staff_client_as(app):
    """A factory: `staff_client_as("editor")` is a fresh client logged in with an account of that
    role (`<role>@example.org`, made on first use; the password is STAFF_PASSWORD)."""
    from alerts.permissions import Role

    def log_in_as(role: str, email: str | None = None):
        email = email or f"{role}@example.org"
        with app.app_context():
            from alerts.extensions import db
            from alerts.models import StaffUser

            if db.session.scalar(sa.select(StaffUser.id).where(StaffUser.email == email)) is None:
                create_staff(email, STAFF_PASSWORD, role=Role(role))
        client = app.test_client()
        response = log_in(client, email=email)
        assert response.status_code == 303, response.get_data(as_text=True)
        return client

    return log_in_as
