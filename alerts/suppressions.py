"""The suppression list's one owner: addresses never to be mailed again, by any path.

Every send path checks here; every writer (a hard bounce at RCPT, a bounce report, a
complaint, staff, erasure) adds here. Adding is one `INSERT … ON CONFLICT DO NOTHING`,
so two writers racing on one address never raise: the first reason stands. Lifting keeps
an audit row. Nothing here commits; the caller's transaction decides.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from .extensions import any_of, db, upsert
from .models import Subscriber, Suppression, SuppressionLift, email_hash, email_key, utcnow

MAX_DETAIL = 2000


# Built once, on the table: building an ORM statement per call, and keying it for SQLAlchemy's
# compiled cache, cost about 3x what executing it does on the signup path (bench/ab_signup.py).
_BY_HASH = sa.select(Suppression.__table__.c.id).where(
    Suppression.__table__.c.email_hash == sa.bindparam("hash")
)


def is_suppressed(email: str) -> bool:
    return db.session.scalar(_BY_HASH, {"hash": email_hash(email)}) is not None


def suppressed_hashes(emails: Iterable[str]) -> set[str]:
    """The hashes of those among `emails` that are suppressed (one query)."""
    hashes = [email_hash(e) for e in emails]
    if not hashes:
        return set()
    query = sa.select(Suppression.email_hash).where(any_of(Suppression.email_hash, hashes))
    return set(db.session.scalars(query))


def add(email: str | None, reason: str, detail: str | None, *,
        conn: sa.Connection | None = None, key: str | None = None) -> bool:
    """Suppress an address (or, with `key` alone, a hash); False if it was there already.

    Race-safe on every database: a concurrent writer's row makes this a no-op, never an
    error that would roll back the caller's other work. `conn` writes on a Connection
    (the blast recorder's) instead of the session.
    """
    key = key or email_hash(email or "")
    executor = conn if conn is not None else db.session
    result = executor.execute(
        upsert(Suppression, conn)
        .values(email_hash=key, email=email, reason=reason,
                detail=(detail or "")[:MAX_DETAIL] or None, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["email_hash"])
        .returning(Suppression.id)
    )
    return result.scalar() is not None


def stored_form(address: str) -> str:
    """The address as a subscriber row spells it, so the equality check at blast start matches."""
    sub = db.session.scalar(
        sa.select(Subscriber).where(Subscriber.email_key == email_key(address))
    )
    if sub is not None:
        return sub.email
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def lift(suppression_id: int, *, by: str, reason: str) -> SuppressionLift | None:
    """Remove an entry, keeping who lifted it, why and when, with what it said."""
    row = db.session.get(Suppression, suppression_id, with_for_update=True)
    if row is None:
        return None
    record = SuppressionLift(
        email_hash=row.email_hash,
        email=row.email,
        reason=row.reason,
        detail=row.detail,
        suppressed_at=row.created_at,
        lifted_by=by,
        lift_reason=reason.strip(),
    )
    db.session.add(record)
    db.session.delete(row)
    return record


ERASED = "erased"


def erase(key: str, detail: str) -> None:
    """An erased person's address stays suppressed by its hash alone, for good."""
    suppression = db.session.scalar(
        sa.select(Suppression).where(Suppression.email_hash == key).with_for_update()
    )
    if suppression is None:
        db.session.add(Suppression(email_hash=key, email=None, reason=ERASED, detail=detail))
        return
    # The address goes, and so does a detail that may quote it (a bounce's diagnostic).
    # The reason becomes "erased": lifting a bounce suppression must not make an
    # erased address mailable again.
    if suppression.reason != ERASED:
        detail += f"; suppressed before as {suppression.reason}"
    suppression.email = None
    suppression.reason = ERASED
    suppression.detail = detail
