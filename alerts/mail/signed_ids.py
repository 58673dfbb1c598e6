"""Ids we put on a message that only we can make: VERP return paths and alert Message-IDs.

A bounce names the delivery it is about through one of these, never through the
subscriber's address, so a forged report cannot name someone else. Each is tagged with an
HMAC of the first SECRET_KEY and verified against all of them (key rotation).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parseaddr

from flask import current_app

LOCAL_PREFIX = "bounces"
_VERP_FULL = re.compile(rf"^{LOCAL_PREFIX}\+([dc])(\d+)-([0-9a-f]{{10}})@(.+)$", re.IGNORECASE)
# Where a report quotes them inside free text.
VERP_RE = re.compile(rf"{LOCAL_PREFIX}\+[dc]\d+-[0-9a-f]{{10}}@[A-Za-z0-9.-]+", re.IGNORECASE)
MESSAGE_ID_RE = re.compile(r"alert(\d+)\.d(\d+)\.([0-9a-f]{12})@[^\s<>\"]+", re.IGNORECASE)


@dataclass(frozen=True)
class BounceTarget:
    kind: str  # "d": an alert delivery, "c": a confirmation email to a subscriber
    ident: int


def envelope_sender(cfg) -> str:
    """The plain address of MAIL_FROM: the return path when VERP is off."""
    return _plain_address(cfg["MAIL_FROM"])


@functools.lru_cache(maxsize=8)
def _plain_address(mail_from: str) -> str:
    return parseaddr(mail_from)[1]  # per message otherwise: parsing costs ~20 µs


def _keys() -> list[bytes]:
    return [k.encode() for k in current_app.config["SECRET_KEYS"]]


def _verp_tag(key: bytes, kind: str, ident: int) -> str:
    return hmac.new(key, f"verp:{kind}{ident}".encode(), hashlib.sha256).hexdigest()[:10]


def return_path(kind: str, ident: int) -> str:
    """The envelope sender for one message: VERP when BOUNCE_DOMAIN is set, else MAIL_FROM."""
    cfg = current_app.config
    domain = cfg.get("BOUNCE_DOMAIN")
    if not domain:
        return envelope_sender(cfg)
    return f"{LOCAL_PREFIX}+{kind}{ident}-{_verp_tag(_keys()[0], kind, ident)}@{domain}"


def parse_return_path(address: str) -> BounceTarget | None:
    """The delivery a bounce address stands for, if it is one of ours and unforged."""
    match = _VERP_FULL.match(address.strip().strip("<>"))
    if not match:
        return None
    kind, ident, tag = match.group(1).lower(), int(match.group(2)), match.group(3).lower()
    if any(hmac.compare_digest(_verp_tag(key, kind, ident), tag) for key in _keys()):
        return BounceTarget(kind, ident)
    return None


def _message_id_tag(key: bytes, delivery_id: int) -> str:
    return hmac.new(key, f"{delivery_id}".encode(), hashlib.sha256).hexdigest()[:12]


class MessageIds:
    """Alert Message-IDs for one blast; the key is read once, the per-message path is one HMAC."""

    def __init__(self, alert_id: int, domain: str, key: bytes):
        self.alert_id, self.domain, self.key = alert_id, domain, key

    @classmethod
    def for_alert(cls, alert_id: int, domain: str) -> MessageIds:
        return cls(alert_id, domain, _keys()[0])

    def __call__(self, delivery_id: int) -> str:
        """Stable per delivery: a resend after a crash carries the same Message-ID."""
        tag = _message_id_tag(self.key, delivery_id)
        return f"<alert{self.alert_id}.d{delivery_id}.{tag}@{self.domain}>"


def parse_message_id(message_id: str) -> tuple[int, int] | None:
    """(alert id, delivery id) of one of our alert Message-IDs whose tag verifies."""
    match = MESSAGE_ID_RE.search(message_id or "")
    if match is None:
        return None
    alert_id, delivery_id, tag = int(match.group(1)), int(match.group(2)), match.group(3).lower()
    if any(hmac.compare_digest(_message_id_tag(key, delivery_id), tag) for key in _keys()):
        return alert_id, delivery_id
    return None
