"""The signed per-recipient reference an alert's action links carry (`?r=<token>`).

A reference names one delivery (so one alert and one subscriber) with an HMAC tag: it lets
the action page greet that subscriber with their masked address and sign for them in one
press, and it records which alert (and delivery) a signature came from. It grants nothing
else: no address shown in full, no unsubscribe, no other person. One token per recipient,
shared by every action link in their message, costs one HMAC-SHA256 (about a microsecond).

The key is derived from each SECRET_KEY for this purpose only, so a reference can never be
read as an unsubscribe, confirmation, VERP or Message-ID tag, nor any of those as a reference.
"""

from __future__ import annotations

import base64
import hmac
import re
from dataclasses import dataclass

from flask import current_app

from ..mail.signed_ids import Keyed

PURPOSE = b"alerts.action-reference.v1"
_TOKEN = re.compile(r"^([1-9][0-9]{0,17})\.([A-Za-z0-9_-]{16})$")


def _derive(secret: str) -> bytes:
    return hmac.digest(secret.encode(), PURPOSE, "sha256")


def _tag(mac: Keyed, delivery_id: int) -> str:
    digest = mac.digest(str(delivery_id).encode())
    return base64.urlsafe_b64encode(digest[:12]).decode()


class ReferenceSigner:
    """Made once per blast (the key derivation is per blast); `__call__` is per recipient."""

    def __init__(self, key: bytes):
        self.mac = Keyed(key)

    @classmethod
    def current(cls) -> ReferenceSigner:
        return cls(_derive(current_app.config["SECRET_KEYS"][0]))

    def __call__(self, delivery_id: int) -> str:
        return f"{delivery_id}.{_tag(self.mac, delivery_id)}"


def make_reference(delivery_id: int) -> str:
    return ReferenceSigner.current()(delivery_id)


@dataclass(frozen=True)
class Reference:
    delivery_id: int


def read_reference(token: str | None) -> Reference | None:
    """The delivery a reference names, or None for anything tampered, truncated or foreign."""
    match = _TOKEN.match(token or "")
    if match is None:
        return None
    delivery_id, tag = int(match.group(1)), match.group(2)
    for secret in current_app.config["SECRET_KEYS"]:
        if hmac.compare_digest(_tag(Keyed(_derive(secret)), delivery_id), tag):
            return Reference(delivery_id)
    return None
