"""API tokens: made by staff (or the CLI), shown once, kept as a hash, scoped, revocable.

A token reads `aa_<key_id>_<secret>`: the key id finds the row, the secret's SHA-256 is
compared with `hmac.compare_digest`. The secret is 32 random bytes, so a fast hash is
right here (a password hash guards guessable secrets; nobody guesses 256 bits).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from .extensions import db
from .models import ApiToken, ApiWrite, utcnow

SCOPES = ("read", "write", "send")
PREFIX = "aa_"
NAME_MAX = 120
# last_used_at is written at most this often per token: a busy CRM costs no write per request.
TOUCH_EVERY = timedelta(seconds=60)


class TokenError(ValueError):
    """A token that cannot be made or changed as asked (the message says why)."""


@dataclass(frozen=True)
class Caller:
    """Who an API request comes from: enough to check scopes and record writes."""

    id: int
    name: str
    scopes: frozenset[str]
    last_used_at: datetime | None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create(name: str, scopes: list[str] | tuple[str, ...], created_by: str) -> tuple[ApiToken, str]:
    """A new token and its plain text (shown once, never stored). The caller commits."""
    name = " ".join((name or "").split())
    if not name:
        raise TokenError("A token needs a name (what uses it, e.g. 'CiviCRM sync').")
    if len(name) > NAME_MAX:
        raise TokenError(f"A token's name is at most {NAME_MAX} characters.")
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise TokenError(f"Unknown scope {', '.join(unknown)}: choose from {', '.join(SCOPES)}.")
    if not scopes:
        raise TokenError(f"A token needs at least one scope ({', '.join(SCOPES)}).")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken(key_id=key_id, secret_hash=_hash(secret), name=name,
                     scopes=" ".join(s for s in SCOPES if s in scopes), created_by=created_by)
    db.session.add(token)
    db.session.flush()
    return token, f"{PREFIX}{key_id}_{secret}"


def _split(raw: str) -> tuple[str, str] | None:
    if not raw.startswith(PREFIX):
        return None
    key_id, sep, secret = raw[len(PREFIX):].partition("_")
    if not sep or not key_id or not secret or len(key_id) > 16:
        return None
    return key_id, secret


_BY_KEY = sa.select(ApiToken.__table__.c.id, ApiToken.__table__.c.name, ApiToken.__table__.c.scopes,
                    ApiToken.__table__.c.secret_hash, ApiToken.__table__.c.revoked_at,
                    ApiToken.__table__.c.last_used_at).where(
    ApiToken.__table__.c.key_id == sa.bindparam("key_id"))


def authenticate(raw: str) -> Caller | None:
    """The token's caller, or None: unknown, malformed, revoked, or a secret that differs."""
    parts = _split(raw.strip())
    if parts is None:
        return None
    key_id, secret = parts
    row = db.session.execute(_BY_KEY, {"key_id": key_id}).first()
    # The comparison runs whether or not the key id was found, against a dummy hash if not.
    expected = row.secret_hash if row is not None else "0" * 64
    if not hmac.compare_digest(_hash(secret), expected) or row is None or row.revoked_at is not None:
        return None
    return Caller(row.id, row.name, frozenset(row.scopes.split()), row.last_used_at)


def needs_touch(caller: Caller, now: datetime | None = None) -> bool:
    """Whether this request should record the token's use (at most once a TOUCH_EVERY)."""
    now = now or utcnow()
    return caller.last_used_at is None or now - caller.last_used_at >= TOUCH_EVERY


def touch(caller: Caller) -> None:
    """Record the token's use now, unless another request did within TOUCH_EVERY. The caller commits."""
    now = utcnow()
    table = ApiToken.__table__
    db.session.connection().execute(
        sa.update(table)
        .where(table.c.id == caller.id,
               sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at < now - TOUCH_EVERY))
        .values(last_used_at=now)
    )


def record_write(caller: Caller, *, method: str, path: str, kind: str, object_id: object,
                 ip: str | None) -> None:
    """Keep what a token wrote, in the write's own transaction. The caller commits."""
    db.session.add(ApiWrite(token_id=caller.id, method=method, path=path[:500], object_kind=kind,
                            object_id=None if object_id is None else str(object_id)[:64], ip=ip))


def tokens() -> list[ApiToken]:
    return list(db.session.scalars(sa.select(ApiToken).order_by(ApiToken.id.desc())))


def revoke(token_id: int) -> ApiToken | None:
    """Stop a token working at once (idempotent); None when there is no such token. The caller commits."""
    token = db.session.get(ApiToken, token_id)
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
    return token
