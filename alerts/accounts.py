"""Staff accounts: argon2id hashes, the one place passwords are checked, roles, invitations.

The last enabled owner can never be demoted, disabled or removed, and only an owner may
make, change or touch an owner: every change below checks both before it changes anything.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from .extensions import db
from .models import StaffRecoveryCode, StaffUser, utcnow
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
    """A staff account change refused (the message says why, for a person to read)."""


class NotAllowed(StaffError):
    """The change is one only an owner may make."""


class LastOwner(StaffError):
    """The change would leave the service with no enabled owner."""


# An invited account's password hash until its invitation sets one: no argon2 hash reads so.
UNUSABLE_PASSWORD = "!"
INVITE_SALT = "alerts.staff-invite.v1"


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


def can_log_in(user: StaffUser | None) -> bool:
    """An account that exists, is not disabled, and has a password of its own (not invited)."""
    return user is not None and user.disabled_at is None and user.password_hash != UNUSABLE_PASSWORD


def pending(user: StaffUser) -> bool:
    """Invited, and the invitation not yet used to set a password."""
    return user.password_hash == UNUSABLE_PASSWORD


def verify_password(user: StaffUser, password: str) -> bool:
    """Whether this is the account's password: the check before a change (no login recorded)."""
    try:
        _argon2()[0].verify(user.password_hash if can_log_in(user) else _dummy_hash(), password)
    except _argon2()[1]:
        return False
    return can_log_in(user)


def check_password(email: str, password: str) -> StaffUser | None:
    """The account if the password matches (the caller commits the login time and any rehash).

    A missing, disabled or still-invited account is checked against a dummy hash, so the
    answer and its timing are those of a wrong password: nothing tells that it exists.
    """
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email.strip().lower()))
    usable = user is not None and can_log_in(user)
    try:
        _argon2()[0].verify(user.password_hash if user is not None and usable else _dummy_hash(), password)
    except _argon2()[1]:
        return None
    if user is None or not usable:
        return None
    if _argon2()[0].check_needs_rehash(user.password_hash):
        user.password_hash = _argon2()[0].hash(password)
    user.last_login_at = utcnow()
    return user


# -- roles, and who may change whom ------------------------------------------------------


def _active_owners() -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(StaffUser).where(
            StaffUser.role == Role.OWNER, StaffUser.disabled_at.is_(None),
            StaffUser.password_hash != UNUSABLE_PASSWORD)
    ) or 0


def _is_active_owner(user: StaffUser) -> bool:
    return user.role == Role.OWNER and can_log_in(user)


def _check_authority(by: Role | None, user: StaffUser | None, role: Role | None = None) -> None:
    """Only an owner (or the operator at the CLI, `by=None`) may touch an owner or grant the role."""
    if by is None or by == Role.OWNER:
        return
    if user is not None and user.role == Role.OWNER:
        raise NotAllowed(f"only an owner can change the owner account {user.email}")
    if role == Role.OWNER:
        raise NotAllowed("only an owner can give the owner role")


def _keep_an_owner(user: StaffUser, doing: str) -> None:
    if _is_active_owner(user) and _active_owners() <= 1:
        raise LastOwner(f"{user.email} is the last owner and cannot be {doing}: "
                         f"make another account owner first")


def find(email: str) -> StaffUser:
    """The account with this address, or StaffError naming it."""
    user = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise StaffError(f"there is no staff account {email.strip().lower()[:80]}")
    return user


def change_role(user: StaffUser, role: Role, *, by: Role | None = None) -> None:
    """Give the account another role; the caller commits."""
    _check_authority(by, user, role)
    if role != Role.OWNER:
        _keep_an_owner(user, "given another role")
    user.role = role


def disable(user: StaffUser, *, by: Role | None = None) -> None:
    """The account can no longer log in, and its sessions end now; the caller commits."""
    _check_authority(by, user)
    _keep_an_owner(user, "disabled")
    if user.disabled_at is None:
        user.disabled_at = utcnow()
    end_sessions(user.id)


def enable(user: StaffUser, *, by: Role | None = None) -> None:
    """A disabled account may log in again (with its password as it was); the caller commits."""
    _check_authority(by, user)
    user.disabled_at = None


def remove(user: StaffUser, *, by: Role | None = None) -> None:
    """Delete the account and its recovery codes; the caller commits."""
    _check_authority(by, user)
    _keep_an_owner(user, "removed")
    db.session.execute(sa.delete(StaffRecoveryCode).where(StaffRecoveryCode.staff_id == user.id))
    db.session.delete(user)


# -- invitations --------------------------------------------------------------------------


def invite(email: str, role: Role, invited_by: str, *, by: Role | None = None) -> StaffUser:
    """A new account with no usable password, until its invitation link sets one; the caller commits."""
    _check_authority(by, None, role)
    email = email.strip().lower()
    if "@" not in email or len(email) > EMAIL_MAX or any(c.isspace() for c in email):
        raise StaffError(f"not an email address (at most {EMAIL_MAX} characters, no spaces): {email[:80]!r}")
    if db.session.scalar(sa.select(StaffUser).where(StaffUser.email == email)):
        raise StaffError(f"staff account {email} already exists")
    user = StaffUser(email=email, password_hash=UNUSABLE_PASSWORD, role=role, invited_at=utcnow(),
                     invited_by=invited_by[:EMAIL_MAX])
    db.session.add(user)
    db.session.flush()
    return user


def _invite_serializer() -> URLSafeTimedSerializer:
    keys = list(reversed(current_app.config["SECRET_KEYS"]))  # signs with the first, as every link
    return URLSafeTimedSerializer(keys, salt=INVITE_SALT)


def _fingerprint(user: StaffUser) -> str:
    """Changes once the invitation is used (a password set) or the account's sessions are ended."""
    return hashlib.sha256(f"{user.id}:{user.password_hash}:{user.session_epoch}".encode()).hexdigest()[:32]


def invite_token(user: StaffUser) -> str:
    """The invitation link's token: single use (its fingerprint dies with it), time-limited."""
    return str(_invite_serializer().dumps({"id": user.id, "fp": _fingerprint(user)}))


INVITE_INVALID = "This invitation link is not valid: ask whoever invited you for a new one."
INVITE_EXPIRED = "This invitation link has expired: ask whoever invited you for a new one."
INVITE_USED = "This invitation link was used already: log in with the password you set."


def invited_account(token: str) -> StaffUser:
    """The account a live invitation is for, or StaffError saying why the link is dead."""
    try:
        claim = _invite_serializer().loads(token, max_age=current_app.config["STAFF_INVITE_MAX_AGE_SECONDS"])
    except SignatureExpired as exc:
        raise StaffError(INVITE_EXPIRED) from exc
    except BadData as exc:
        raise StaffError(INVITE_INVALID) from exc
    if not isinstance(claim, dict) or not isinstance(claim.get("id"), int):
        raise StaffError(INVITE_INVALID)
    user = db.session.get(StaffUser, claim["id"])
    if user is None or user.disabled_at is not None:
        raise StaffError(INVITE_INVALID)
    if claim.get("fp") != _fingerprint(user):
        raise StaffError(INVITE_USED if not pending(user) else INVITE_INVALID)
    return user


def accept_invite(token: str, password: str) -> StaffUser:
    """Set the invited account's password from its link (which dies with it); the caller commits."""
    user = invited_account(token)
    set_password(user, password)
    return user
