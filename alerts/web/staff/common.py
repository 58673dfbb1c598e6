"""What the staff views share: the signed-in user and the list pages' paging."""

from __future__ import annotations

from flask import request

from ... import audit
from ...audit import Actor
from ...extensions import db
from ...models import StaffUser
from . import auth

PER_PAGE = 50
MAX_PAGE = 1_000_000  # beyond any list here; keeps OFFSET inside the databases' integers


def page_number() -> int:
    """The `page` query argument, 1 when missing or nonsense, never past MAX_PAGE."""
    page = request.args.get("page", 1, type=int)
    return min(max(page, 1), MAX_PAGE)


def current_staff() -> StaffUser:
    user = auth.current_staff()
    assert user is not None  # the blueprint's before_request gate let this request through
    return user


def staff_actor() -> Actor:
    """The signed-in staff member as the audit trail names them: their address and IP."""
    return Actor("staff", current_staff().email, request.remote_addr)


def record_export(action: str, target: str | None = None, **detail: object) -> None:
    """An export on the record, committed before a byte of it leaves (a HEAD exports nothing)."""
    if request.method == "GET":
        record(action, target, **detail)
        db.session.commit()


def record(action: str, target: str | None = None, **detail: object) -> None:
    """One audit row for what the signed-in staff member just changed (the view commits it)."""
    audit.record(staff_actor(), action, target, **detail)
