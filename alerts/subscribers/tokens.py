"""Signed links: purpose-bound salts, key rotation, expiry only where the contract wants it.

Every link is bound to the subscriber's random `token_key`, never to their id: a link
names no sequential number, and it dies with the person (erasure deletes the key), so no
link can come to control someone who signs up later. Tokens are read strictly: only the
exact, canonically encoded string that was made verifies (no trailing junk, no other
spelling of the same signature).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadData, BadSignature, SignatureExpired, URLSafeSerializer, URLSafeTimedSerializer
from itsdangerous.encoding import base64_decode, base64_encode

from ..extensions import db
from ..mail.signed_ids import Keyed
from ..models import Subscriber

CONFIRM_SALT = "alerts.confirm.v2"
UNSUBSCRIBE_SALT = "alerts.unsubscribe.v2"
LEGACY_UNSUBSCRIBE_SALT = "alerts.unsubscribe.v1"  # a signed subscriber id, before token keys
# What a staff test send and preview carry in place of a subscriber's token: a sample that
# names no one, which the unsubscribe page explains instead of calling it broken.
TEST_SEND_TOKEN, PREVIEW_TOKEN = "test-send", "preview"
SAMPLE_UNSUBSCRIBE_TOKENS = frozenset({TEST_SEND_TOKEN, PREVIEW_TOKEN})
_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")
_KEY = re.compile(r"^[0-9a-f]{32}$")


class TokenError(Exception):
    """A link that cannot be honoured; `reason` picks the page the visitor sees."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # "invalid" | "expired" | "used"


@dataclass(frozen=True)
class ConfirmClaim:
    token_key: str
    nonce: str


def _keys() -> list[str]:
    # itsdangerous signs with the last key and verifies with all; the contract lists
    # the signing key first, so the order is reversed here.
    return list(reversed(current_app.config["SECRET_KEYS"]))


def _canonical(token: str, segments: int) -> None:
    """Each dot-separated part is canonical unpadded base64url, or the token is refused.

    (A leading dot is itsdangerous' mark of a compressed payload.)
    """
    parts = token.removeprefix(".").split(".")
    if len(parts) != segments:
        raise TokenError("invalid")
    for part in parts:
        if not _SEGMENT.match(part):
            raise TokenError("invalid")
        try:
            if base64_encode(base64_decode(part)).decode() != part:
                raise TokenError("invalid")
        except BadData as exc:  # not base64 at all
            raise TokenError("invalid") from exc


def make_confirm_token(token_key: str, nonce: str) -> str:
    return URLSafeTimedSerializer(_keys(), salt=CONFIRM_SALT).dumps([token_key, nonce])


def read_confirm_token(token: str) -> ConfirmClaim:
    _canonical(token, 3)
    serializer = URLSafeTimedSerializer(_keys(), salt=CONFIRM_SALT)
    try:
        data = serializer.loads(token, max_age=current_app.config["CONFIRM_MAX_AGE_SECONDS"])
    except SignatureExpired as exc:
        raise TokenError("expired") from exc
    except BadSignature as exc:
        raise TokenError("invalid") from exc
    if not (isinstance(data, list) and len(data) == 2 and all(isinstance(v, str) for v in data)
            and _KEY.match(data[0])):
        raise TokenError("invalid")
    return ConfirmClaim(token_key=data[0], nonce=data[1])


def confirm_token_key(token: str) -> str | None:
    """The token key of a confirmation link we signed, expired or not (which language to explain
    an expired link in); None for any other string."""
    try:
        return read_confirm_token(token).token_key
    except TokenError as exc:
        if exc.reason != "expired":
            return None
    data = URLSafeTimedSerializer(_keys(), salt=CONFIRM_SALT).loads(token)  # (signed: checked above)
    return data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None


def unsubscribe_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(_keys(), salt=UNSUBSCRIBE_SALT)


class UnsubscribeTokens:
    """`unsubscribe_serializer().dumps(key)`, the same string, at a twentieth of the cost: a blast
    signs one per message. The serializer tries zlib on every payload (which never shortens a
    32-hex key) and derives its HMAC key on every call; here the key is derived once and a
    token key's JSON is written directly. Anything but a token key goes the serializer's way.
    (tests/test_tokens.py holds the two equal, key rotation included.)
    """

    def __init__(self) -> None:
        self._serializer = unsubscribe_serializer()
        self._mac = Keyed(self._serializer.make_signer().derive_key(), "sha1")

    def dumps(self, token_key: str) -> str:
        if not _KEY.match(token_key):
            return self._serializer.dumps(token_key)
        payload = base64_encode(f'"{token_key}"'.encode())
        return (payload + b"." + base64_encode(self._mac.digest(payload))).decode()


def make_unsubscribe_token(token_key: str) -> str:
    return unsubscribe_serializer().dumps(token_key)


def read_unsubscribe_token(token: str) -> str:
    """The token key an unsubscribe link carries; TokenError when it is not one we made."""
    _canonical(token, 2)
    try:
        data = unsubscribe_serializer().loads(token)
    except BadSignature as exc:
        raise TokenError("invalid") from exc
    if not (isinstance(data, str) and _KEY.match(data)):
        raise TokenError("invalid")
    return data


def subscriber_id_for_key(token_key: str) -> int | None:
    return db.session.scalar(sa.select(Subscriber.id).where(Subscriber.token_key == token_key))


def legacy_unsubscribe_id(token: str) -> int | None:
    """The subscriber a link from an email sent before token keys names (a signed id).

    Honoured so that every unsubscribe link ever sent keeps working (the law wants them to),
    but for unsubscribing only, and only for subscribers who were on the list then: an id
    signed for an erased person can never reach anyone who signed up since.
    """
    try:
        _canonical(token, 2)
        data = URLSafeSerializer(_keys(), salt=LEGACY_UNSUBSCRIBE_SALT).loads(token)
    except (TokenError, BadSignature):
        return None
    if type(data) is not int or not 0 < data < 2**63:
        return None
    return db.session.scalar(
        sa.select(Subscriber.id).where(Subscriber.id == data, Subscriber.legacy_links.is_(True))
    )


def unsubscribe_subscriber_id(token: str) -> int | None:
    """The subscriber an unsubscribe link is for; None when they were erased (TokenError if forged)."""
    return subscriber_id_for_key(read_unsubscribe_token(token))
