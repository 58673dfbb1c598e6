"""What every table shares: the declarative base, UTC datetimes, the address keys and hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine.default import DefaultExecutionContext

from ..extensions import Base, db

if TYPE_CHECKING:
    Model = Base  # what db.Model is built from at run time; Flask-SQLAlchemy's attribute is untyped
else:
    Model = db.Model


# Every id column is an INTEGER (int4 on PostgreSQL): a URL, cursor or command-line id past this
# names no row and must be refused before it reaches the database (PostgreSQL errors on it).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use datetime.now(timezone.utc)")
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def email_hash(email: str) -> str:
    """Suppressions are keyed by a hash, so an erased address is remembered, not kept."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def email_key(email: str) -> str:
    """The case-folded address: what uniqueness and the cooldown key on (the typed one is mailed)."""
    return email.strip().lower()


def _email_key_default(context: DefaultExecutionContext) -> str:
    return email_key(context.get_current_parameters()["email"])


def new_token_key() -> str:
    """A per-subscriber random value that every link and address for them is bound to."""
    return secrets.token_hex(16)
