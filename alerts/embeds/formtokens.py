"""The embedded forms' CSRF defence: a signed, short-lived token bound to one form, not a cookie.

A framed page on another site usually gets no cookies (browsers block third-party cookies),
so the session-bound token of the site's own forms cannot work there. The token says which
form it was made for (`signup`, `action:<slug>`) and when; with the Origin check
(`origins.may_post`) it stops another site from posting forms in a visitor's name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

FORM_TOKEN_SALT = "embed-form"


class FormTokenError(Exception):
    """A form token that cannot count; `reason` is expired | invalid | wrong-form."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def purpose_for(slug: str | None) -> str:
    """What a token is for: the signup form, or one action's signing form."""
    return "signup" if slug is None else f"action:{slug}"


def _serializer(cfg: Mapping[str, Any]) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key; SECRET_KEYS lists the signing key first.
    return URLSafeTimedSerializer(list(reversed(cfg["SECRET_KEYS"])), salt=FORM_TOKEN_SALT)


def make_form_token(cfg: Mapping[str, Any], purpose: str) -> str:
    return _serializer(cfg).dumps(purpose)


def check_form_token(cfg: Mapping[str, Any], token: str | None, purpose: str) -> None:
    """Raise FormTokenError unless `token` was made here, for `purpose`, within EMBED_FORM_MAX_AGE."""
    if not token or len(token) > 512:
        raise FormTokenError("invalid")
    try:
        found = _serializer(cfg).loads(token, max_age=cfg["EMBED_FORM_MAX_AGE"])
    except SignatureExpired as exc:
        raise FormTokenError("expired") from exc
    except BadData as exc:
        raise FormTokenError("invalid") from exc
    if found != purpose:
        raise FormTokenError("wrong-form")
