"""VERP return paths: a bounce names the delivery it is about, never the subscriber's address."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from flask import current_app

from .mailer import envelope_sender

LOCAL_PREFIX = "bounces"
_RE = re.compile(rf"^{LOCAL_PREFIX}\+([dc])(\d+)-([0-9a-f]{{10}})@(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class BounceTarget:
    kind: str  # "d": an alert delivery, "c": a confirmation email to a subscriber
    ident: int


def _tag(key: bytes, kind: str, ident: int) -> str:
    return hmac.new(key, f"verp:{kind}{ident}".encode(), hashlib.sha256).hexdigest()[:10]


def return_path(kind: str, ident: int) -> str:
    """The envelope sender for one message: VERP when BOUNCE_DOMAIN is set, else MAIL_FROM."""
    cfg = current_app.config
    domain = cfg.get("BOUNCE_DOMAIN")
    if not domain:
        return envelope_sender(cfg)
    tag = _tag(cfg["SECRET_KEYS"][0].encode(), kind, ident)
    return f"{LOCAL_PREFIX}+{kind}{ident}-{tag}@{domain}"


def parse(address: str) -> BounceTarget | None:
    """The delivery a bounce address stands for, if it is one of ours and unforged."""
    match = _RE.match(address.strip().strip("<>"))
    if not match:
        return None
    kind, ident, tag = match.group(1).lower(), int(match.group(2)), match.group(3).lower()
    for key in current_app.config["SECRET_KEYS"]:
        if hmac.compare_digest(_tag(key.encode(), kind, ident), tag):
            return BounceTarget(kind, ident)
    return None
