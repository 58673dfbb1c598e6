"""Shared by the import/export and privacy tests: a logged-in staff client, CSV files."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import csrf_token
from tests.helpers import create_staff

STAFF_EMAIL = "data-staff@example.org"
STAFF_PASSWORD = "a long data password"


def log_in_staff(app, client):
    """Create a staff account and log the client in with it, as a browser does."""
    with app.app_context():
        create_staff(STAFF_EMAIL, STAFF_PASSWORD)
    token = csrf_token(client, "/staff/login")
    response = client.post(
        "/staff/login",
        data={"email": STAFF_EMAIL, "password": STAFF_PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "203.0.113.77"},
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
