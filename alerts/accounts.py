"""Staff accounts: argon2id hashes, and the one place passwords are checked."""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .extensions import db
from .models import StaffUser, utcnow
from .permissions import DEFAULT_ROLE, FIRST_ROLE, Role

if TYPE_CHECKING:
    from argon2 import PasswordHasher


@functools.cache
def _argon2() -> tuple[PasswordHasher, tuple[type[Exception], ...]]:
    """argon2 on first use: most `alerts` commands never hash a password."""
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    return PasswordHasher(), (VerificationError, InvalidHashError)


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so the timing is the same.

    Made on first use: hashing at import would cost every worker and CLI process 64 MiB.
    """
    return _argon2()[0].hash("not a real password")


EMAIL_MAX = 254  # StaffUser.email
MIN_PASSWORD_LENGTH = 12
MIN_PASSWORD_SCORE = 3  # zxcvbn's 0-4: 3 resists an offline attack on a slow hash
STRENGTH_CHECKED = 72  # zxcvbn looks at this many characters at most


class StaffError(ValueError):
    pass


def check_new_password(password: str, email: str) -> None:
    """Refuse a staff password that is short, or common, or made of a guessable pattern.

    zxcvbn knows common and breached passwords, names, words, keyboard walks, repeats and
    dates; the account's address counts as a known word. Raises StaffError saying why.
    """
    try:
        password.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StaffError("the password is not UTF-8 text (it holds bytes that are not UTF-8)") from exc
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"the password is too short: it needs at least {MIN_PASSWORD_LENGTH} "
                         f"characters (a few unrelated words make a good one)")
    from zxcvbn import zxcvbn

    address = email.strip().lower()
    words = [address, address.partition("@")[0], *(w for w in re.split(r"[^a-z0-9]+", address) if w)]
    result = zxcvbn(password[:STRENGTH_CHECKED], user_inputs=words)
    if result["score"] >= MIN_PASSWORD_SCORE:
        return
    feedback = result["feedback"]
    why = feedback["warning"] or "it follows a pattern that is quick to guess"
    hint = " ".join(feedback["suggestions"]) or "Add another word or two. Uncommon words are better."
    raise StaffError(f"the password is too easy to guess: {why.rstrip('.')}. {hint}")


def create_staff(email: str, password: str, role: Role | None = None) -> StaffUser:
    """A new account: the first is the owner, later ones editors unless `role` says."""
    email = email.strip().lower()
    if "@" not in email or len(email) > EMAIL_MAX or any(c.isspace() for c in email):
        raise StaffError(f"not an email address (at most {EMAIL_MAX} characters, no spaces): {email[:80]!r}")
    check_new_password(password, email)
    if db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email)):
        raise StaffError(f"staff account {email} already exists")
    if role is None:
        role = DEFAULT_ROLE if db.session.scalar(sa.select(StaffUser.id).limit(1)) else FIRST_ROLE
    user = StaffUser(email=email, password_hash=_argon2()[0].hash(password), role=role)
    db.session.add(user)
    return user


def ensure_dev_staff(email: str, password: str) -> str:
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email))
    if user is None:
        create_staff(email, password)
    elif not check_password(email, password):
        set_password(user, password)
    return email


def set_password(user: StaffUser, password: str) -> None:
    """A new password ends every session of the account; the caller commits."""
    check_new_password(password, user.email)
    user.password_hash = _argon2()[0].hash(password)
    end_sessions(user.id)


def end_sessions(user_id: int) -> None:
    """Every session of this account stops working at its next request; the caller commits."""
    db.session.execute(
        sa.update(StaffUser).where(StaffUser.id == user_id)
        .values(session_epoch=StaffUser.session_epoch + 1)
        .execution_options(synchronize_session="fetch")
    )


def end_sessions_for(email: str) -> None:
    """`end_sessions` by address (nothing when there is no such account); the caller commits."""
    db.session.execute(
        sa.update(StaffUser).where(StaffUser.email == email.strip().lower())
        .values(session_epoch=StaffUser.session_epoch + 1)
        .execution_options(synchronize_session="fetch")
    )


def check_password(email: str, password: str) -> StaffUser | None:
    """The account if the password matches (the caller commits the login time and any rehash)."""
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email.strip().lower()))
    try:
        _argon2()[0].verify(user.password_hash if user else _dummy_hash(), password)
    except _argon2()[1]:
        return None
    if user is None:
        return None
    if _argon2()[0].check_needs_rehash(user.password_hash):
        user.password_hash = _argon2()[0].hash(password)
    user.last_login_at = utcnow()
    return user
