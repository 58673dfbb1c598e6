"""Signed links: purpose-bound salts, key rotation, expiry only where the contract wants it."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer

CONFIRM_SALT = "alerts.confirm.v1"
UNSUBSCRIBE_SALT = "alerts.unsubscribe.v1"


class TokenError(Exception):
    """A link that cannot be honoured; `reason` picks the page the visitor sees."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "invalid" | "expired"


@dataclass(frozen=True)
class ConfirmClaim:
    subscriber_id: int
    nonce: str


def _keys() -> list[str]:
    # itsdangerous signs with the last key and verifies with all; the contract lists
    # the signing key first, so the order is reversed here.
    return list(reversed(current_app.config["SECRET_KEYS"]))


def make_confirm_token(subscriber_id: int, nonce: str) -> str:
    return URLSafeTimedSerializer(_keys(), salt=CONFIRM_SALT).dumps([subscriber_id, nonce])


def read_confirm_token(token: str) -> ConfirmClaim:
    serializer = URLSafeTimedSerializer(_keys(), salt=CONFIRM_SALT)
    try:
        data = serializer.loads(token, max_age=current_app.config["CONFIRM_MAX_AGE_SECONDS"])
    except SignatureExpired as exc:
        raise TokenError("expired") from exc
    except BadSignature as exc:
        raise TokenError("invalid") from exc
    if not (isinstance(data, list) and len(data) == 2 and isinstance(data[0], int)):
        raise TokenError("invalid")
    return ConfirmClaim(subscriber_id=data[0], nonce=str(data[1]))


def unsubscribe_serializer() -> URLSafeSerializer:
    """Exposed so a blast builds one serializer and signs thousands of ids with it."""
    return URLSafeSerializer(_keys(), salt=UNSUBSCRIBE_SALT)


def make_unsubscribe_token(subscriber_id: int) -> str:
    return unsubscribe_serializer().dumps(subscriber_id)


def read_unsubscribe_token(token: str) -> int:
    try:
        data = unsubscribe_serializer().loads(token)
    except BadSignature as exc:
        raise TokenError("invalid") from exc
    if not isinstance(data, int):
        raise TokenError("invalid")
    return data
