"""Ids we put on a message that only we can make: VERP return paths, alert Message-IDs,
click tokens and the List-Unsubscribe mailto address.

A bounce names the delivery it is about through one of these, never through the
subscriber's address, so a forged report cannot name someone else. Each is tagged with an
HMAC of the first SECRET_KEY and verified against all of them (key rotation).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

from flask import current_app

LOCAL_PREFIX = "bounces"
_VERP_FULL = re.compile(rf"^{LOCAL_PREFIX}\+([dcl])(\d+)-([0-9a-f]{{10}})@(.+)$", re.IGNORECASE)
# Where a report quotes them inside free text.
VERP_RE = re.compile(rf"{LOCAL_PREFIX}\+[dcl]\d+-[0-9a-f]{{10}}@[A-Za-z0-9.-]+", re.IGNORECASE)
MESSAGE_ID_RE = re.compile(r"alert(\d+)\.d(\d+)\.([0-9a-f]{12})@[^\s<>\"]+", re.IGNORECASE)


@dataclass(frozen=True)
class BounceTarget:
    kind: str  # "d": an alert delivery, "c": a confirmation email to a subscriber, "l": a letter to a target
    ident: int


def envelope_sender(cfg: Mapping[str, Any]) -> str:
    """The plain address of MAIL_FROM: the return path when VERP is off."""
    return _plain_address(cfg["MAIL_FROM"])


@functools.lru_cache(maxsize=8)
def _plain_address(mail_from: str) -> str:
    return parseaddr(mail_from)[1]  # per message otherwise: parsing costs ~20 µs


def _keys() -> list[bytes]:
    return [k.encode() for k in current_app.config["SECRET_KEYS"]]


_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))


class Keyed:
    """`hmac.digest(key, msg, digest)` with the key's two padded blocks hashed once, not at
    every call (RFC 2104): a blast makes six tags a message, and each costs about a quarter
    of what `hmac.digest` spends (tests hold the two equal)."""

    def __init__(self, key: bytes, digest: str = "sha256"):
        new = getattr(hashlib, digest)
        block = new().block_size
        if len(key) > block:
            key = new(key).digest()
        key = key.ljust(block, b"\0")
        self._inner, self._outer = new(key.translate(_INNER_PAD)), new(key.translate(_OUTER_PAD))

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def _all_keys() -> list[Keyed]:
    return [Keyed(key) for key in _keys()]


def _verp_tag(mac: Keyed, kind: str, ident: int) -> str:
    return mac.digest(f"verp:{kind}{ident}".encode()).hex()[:10]


class ReturnPaths:
    """Envelope senders with the configuration read once: a blast asks for one per message."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.domain = cfg.get("BOUNCE_DOMAIN")
        self.plain = envelope_sender(cfg)
        self.mac = Keyed(_keys()[0]) if self.domain else None

    def __call__(self, kind: str, ident: int) -> str:
        """VERP when BOUNCE_DOMAIN is set, else MAIL_FROM's address."""
        if not self.domain or self.mac is None:  # the key is made with the domain
            return self.plain
        return f"{LOCAL_PREFIX}+{kind}{ident}-{_verp_tag(self.mac, kind, ident)}@{self.domain}"


def return_path(kind: str, ident: int) -> str:
    """The envelope sender for one message: VERP when BOUNCE_DOMAIN is set, else MAIL_FROM."""
    return ReturnPaths(current_app.config)(kind, ident)


def parse_return_path(address: str) -> BounceTarget | None:
    """The delivery a bounce address stands for, if it is one of ours and unforged."""
    match = _VERP_FULL.match(address.strip().strip("<>"))
    if not match:
        return None
    kind, ident, tag = match.group(1).lower(), int(match.group(2)), match.group(3).lower()
    if any(hmac.compare_digest(_verp_tag(mac, kind, ident), tag) for mac in _all_keys()):
        return BounceTarget(kind, ident)
    return None


def _message_id_tag(mac: Keyed, delivery_id: int) -> str:
    return mac.digest(f"{delivery_id}".encode()).hex()[:12]


class MessageIds:
    """Alert Message-IDs for one blast; the key is read once, the per-message path is one HMAC."""

    def __init__(self, alert_id: int, domain: str, key: bytes):
        self.alert_id, self.domain, self.mac = alert_id, domain, Keyed(key)

    @classmethod
    def for_alert(cls, alert_id: int, domain: str) -> MessageIds:
        return cls(alert_id, domain, _keys()[0])

    def __call__(self, delivery_id: int) -> str:
        """Stable per delivery: a resend after a crash carries the same Message-ID."""
        tag = _message_id_tag(self.mac, delivery_id)
        return f"<alert{self.alert_id}.d{delivery_id}.{tag}@{self.domain}>"


def parse_message_id(message_id: str) -> tuple[int, int] | None:
    """(alert id, delivery id) of one of our alert Message-IDs whose tag verifies."""
    match = MESSAGE_ID_RE.search(message_id or "")
    if match is None:
        return None
    alert_id, delivery_id, tag = int(match.group(1)), int(match.group(2)), match.group(3).lower()
    if any(hmac.compare_digest(_message_id_tag(mac, delivery_id), tag) for mac in _all_keys()):
        return alert_id, delivery_id
    return None


# -- the List-Unsubscribe mailto address -----------------------------------------------------

UNSUBSCRIBE_PREFIX = "unsubscribe"
# Lower-case hex only: some MTAs fold the local part's case on the way.
_UNSUB_FULL = re.compile(rf"^{UNSUBSCRIBE_PREFIX}\+([0-9a-f]{{32}})-([0-9a-f]{{16}})@(.+)$", re.IGNORECASE)


def _unsubscribe_tag(mac: Keyed, token_key: str) -> str:
    return mac.digest(f"unsubscribe:{token_key}".encode()).hex()[:16]


class UnsubscribeAddresses:
    """`unsubscribe_address` with the configuration read once: a blast asks once a message."""

    def __init__(self, cfg: Mapping[str, Any]) -> None:
        self.domain = cfg.get("BOUNCE_DOMAIN")
        self.mac = Keyed(_keys()[0]) if self.domain else None

    def __call__(self, token_key: str) -> str | None:
        if not self.domain or self.mac is None:  # the key is made with the domain
            return None
        return f"{UNSUBSCRIBE_PREFIX}+{token_key}-{_unsubscribe_tag(self.mac, token_key)}@{self.domain}"


def unsubscribe_address(token_key: str) -> str | None:
    """`unsubscribe+<key>-<tag>@BOUNCE_DOMAIN` for one subscriber's token key; None without
    BOUNCE_DOMAIN (nothing would read the mailbox, so no mailto is advertised)."""
    return UnsubscribeAddresses(current_app.config)(token_key)


def parse_unsubscribe_address(address: str) -> str | None:
    """The token key a mailto unsubscribe address names, if it is one of ours, on
    BOUNCE_DOMAIN, and its tag verifies."""
    match = _UNSUB_FULL.match(address.strip().strip("<>"))
    domain = (current_app.config.get("BOUNCE_DOMAIN") or "").lower().rstrip(".")
    if not match or not domain or match.group(3).lower().rstrip(".") != domain:
        return None
    token_key, tag = match.group(1).lower(), match.group(2).lower()
    if any(hmac.compare_digest(_unsubscribe_tag(mac, token_key), tag) for mac in _all_keys()):
        return token_key
    return None


# -- click tokens: /r/<token>/<link index> -------------------------------------------------

_CLICK_TAG_BYTES = 9


def _click_tag(mac: Keyed, alert_id: int, delivery_id: int) -> bytes:
    return mac.digest(f"click:{alert_id}:{delivery_id}".encode())[:_CLICK_TAG_BYTES]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 56:
            raise ValueError("truncated")
        byte = data[pos]
        n |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return n, pos


class ClickTokens:
    """One short token per recipient of a blast, naming (alert, delivery) with a 72-bit HMAC.

    Each link's URL is the token plus the link's index, so a message costs one HMAC
    however many links it has. About 20 characters for a million-recipient list.
    """

    def __init__(self, alert_id: int, key: bytes):
        self.alert_id, self.mac = alert_id, Keyed(key)
        self._alert = _varint(alert_id)
        self._last: tuple[int, str] | None = None  # links and the open pixel share one HMAC

    @classmethod
    def for_alert(cls, alert_id: int) -> ClickTokens:
        return cls(alert_id, _keys()[0])

    def __call__(self, delivery_id: int) -> str:
        if self._last is not None and self._last[0] == delivery_id:
            return self._last[1]
        raw = self._alert + _varint(delivery_id) + _click_tag(self.mac, self.alert_id, delivery_id)
        token = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        self._last = (delivery_id, token)
        return token


def parse_click_token(token: str) -> tuple[int, int] | None:
    """(alert id, delivery id) of a click token whose tag verifies under any key; else None."""
    if not 4 <= len(token) <= 40:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        alert_id, pos = _read_varint(raw, 0)
        delivery_id, pos = _read_varint(raw, pos)
    except (ValueError, binascii.Error):
        return None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
        return None  # one spelling per token: no second string decodes to the same bytes
    tag = raw[pos:]
    if len(tag) != _CLICK_TAG_BYTES:
        return None
    if any(hmac.compare_digest(_click_tag(mac, alert_id, delivery_id), tag) for mac in _all_keys()):
        return alert_id, delivery_id
    return None
