"""Two-factor login: TOTP codes (RFC 6238) from an authenticator app, and single-use recovery codes.

A code is accepted for the current 30-second step or the one either side (a phone's clock
drifts), and never for a step at or before the last one accepted, so a code overheard or
replayed is refused. Recovery codes are kept as SHA-256 hashes and each works once.
Nothing here commits: the views and commands do, with the audit record of what changed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import pyotp
import sqlalchemy as sa

from .extensions import db
from .models import StaffRecoveryCode, StaffUser, utcnow

RECOVERY_CODES = 10
# Ten characters from 31 that cannot be mistaken for each other (no 0/o, 1/l/i): ~49 bits each.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_LENGTH = 10
VALID_WINDOW = 1  # steps either side of now
ISSUER_FALLBACK = "Action Alerts"

# Read at each check, so a test can set the time (pyotp.TOTP(secret).at(t) makes its codes).
clock: Callable[[], float] = time.time


class TwoFactorError(ValueError):
    """A code refused, or a change refused (the message says why, for the person)."""


def new_secret() -> str:
    """A fresh base32 TOTP secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32(32)


def enabled(user: StaffUser) -> bool:
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def required(user: StaffUser, cfg: Mapping[str, Any]) -> bool:
    """True when the account's role is one STAFF_REQUIRE_2FA names."""
    return user.role in cfg["STAFF_REQUIRE_2FA"]


def provisioning_uri(email: str, secret: str, issuer: str | None) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer or ISSUER_FALLBACK)


def qr_data_uri(uri: str) -> str:
    """The QR code as an SVG data: URI, drawn here (the staff CSP allows img-src data:)."""
    import segno

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def _totp_digits(code: str) -> str | None:
    digits = re.sub(r"\s+", "", code)
    return digits if re.fullmatch(r"\d{6}", digits) else None


def _matching_step(secret: str, code: str, now: float, after: int | None) -> int | None:
    """The step (of now and its neighbours) whose code this is, if later than `after`."""
    digits = _totp_digits(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret)
    current = int(now) // totp.interval
    found = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits) and (after is None or step > after):
            found = step
    return found


def verify(user: StaffUser, code: str, now: float | None = None) -> bool:
    """A current code, not used before: True, and its step is kept so it cannot be used again."""
    if not enabled(user):
        return False
    assert user.totp_secret is not None
    step = _matching_step(user.totp_secret, code, clock() if now is None else now, user.totp_last_step)
    if step is None:
        return False
    user.totp_last_step = step
    return True


def looks_like_totp(code: str) -> bool:
    return _totp_digits(code) is not None


def enable(user: StaffUser, secret: str, code: str, now: float | None = None) -> list[str]:
    """Turn 2FA on once the app shows a right code for `secret`; returns the ten recovery codes."""
    step = _matching_step(secret, code, clock() if now is None else now, None)
    if step is None:
        raise TwoFactorError("That code is not the one your app shows for this key. Check the phone's "
                             "clock is right, and enter the 6 digits it shows now.")
    user.totp_secret = secret
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    return regenerate_codes(user)


def disable(user: StaffUser) -> None:
    """Turn 2FA off: the secret and every recovery code are gone."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(sa.delete(StaffRecoveryCode).where(StaffRecoveryCode.staff_id == user.id))


# -- recovery codes ---------------------------------------------------------------------


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]+", "", code).lower()


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def regenerate_codes(user: StaffUser) -> list[str]:
    """Ten new recovery codes (shown once; only their hashes kept); the old ones stop working."""
    db.session.execute(sa.delete(StaffRecoveryCode).where(StaffRecoveryCode.staff_id == user.id))
    codes = [_new_code() for _ in range(RECOVERY_CODES)]
    db.session.add_all(StaffRecoveryCode(staff_id=user.id, code_hash=_hash(code)) for code in codes)
    return codes


def codes_left(user: StaffUser) -> int:
    return db.session.scalar(
        sa.select(sa.func.count()).select_from(StaffRecoveryCode)
        .where(StaffRecoveryCode.staff_id == user.id, StaffRecoveryCode.used_at.is_(None))
    ) or 0


def use_recovery_code(user: StaffUser, code: str) -> bool:
    """True, and the code marked used, when it is one of the account's unused recovery codes."""
    if not enabled(user) or len(_normalise(code)) != RECOVERY_LENGTH:
        return False
    wanted = _hash(code)
    unused = db.session.scalars(
        sa.select(StaffRecoveryCode)
        .where(StaffRecoveryCode.staff_id == user.id, StaffRecoveryCode.used_at.is_(None))
    ).all()
    match = None
    for row in unused:  # every row compared, in constant time: the timing says nothing
        if hmac.compare_digest(row.code_hash, wanted):
            match = row
    if match is None:
        return False
    # Marked used only if nobody else marked it first (two requests with the same code).
    done = db.session.execute(
        sa.update(StaffRecoveryCode)
        .where(StaffRecoveryCode.id == match.id, StaffRecoveryCode.used_at.is_(None))
        .values(used_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]
