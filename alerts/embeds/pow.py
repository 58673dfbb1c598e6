"""Proof of work on the embedded forms (ALTCHA, with the `altcha` library): no third party involved.

The page carries a challenge signed with a key derived from SECRET_KEY; the visitor's browser
finds the number whose SHA-256 with the challenge's salt gives the challenge (static/embed-frame.js),
which costs a browser about a second and a bot the same for every post. A solved challenge is
accepted once: its signature is claimed in Redis (SET NX with the challenge's lifetime). While
Redis does not answer the claim is skipped (and logged), so a signup is never lost to an outage.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, cast

import redis
from altcha import v1 as altcha

log = logging.getLogger(__name__)

REPLAY_PREFIX = "embed-pow:"
# A Redis that does not answer costs a post at most this long before the claim is skipped.
REDIS_TIMEOUT_SECONDS = 0.5


class PowError(Exception):
    """A proof of work that cannot count; `reason` is missing | wrong | used."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _hmac_key(secret: str) -> str:
    """A key for challenges alone, so a challenge's signature is no other token's."""
    return hmac.new(secret.encode(), b"alerts embed proof-of-work", hashlib.sha256).hexdigest()


def challenge(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A fresh challenge (algorithm, challenge, maxnumber, salt, signature) for one form."""
    made = altcha.create_challenge(altcha.ChallengeOptions(
        algorithm="SHA-256", max_number=int(cfg["EMBED_POW_MAX_NUMBER"]),
        hmac_key=_hmac_key(cfg["SECRET_KEYS"][0]),
        expires=datetime.now(UTC) + timedelta(seconds=cfg["EMBED_FORM_MAX_AGE"]),
    ))
    return {"algorithm": made.algorithm, "challenge": made.challenge, "maxnumber": made.max_number,
            "salt": made.salt, "signature": made.signature}


def _decode(payload: str) -> dict[str, Any] | None:
    try:
        found = json.loads(base64.b64decode(payload, validate=True).decode())
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return found if isinstance(found, dict) else None


@lru_cache(maxsize=4)
def _redis(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_SECONDS,
                                socket_connect_timeout=REDIS_TIMEOUT_SECONDS)


def _claim(cfg: Mapping[str, Any], signature: str) -> bool:
    """True the first time a solved challenge is seen (or when Redis cannot say)."""
    url = cfg.get("REDIS_URL")
    if not url:
        return True
    try:
        return bool(_redis(url).set(REPLAY_PREFIX + signature, b"1", nx=True,
                                    ex=int(cfg["EMBED_FORM_MAX_AGE"]) + 60))
    except redis.RedisError as exc:
        log.warning("proof-of-work replay check skipped, Redis did not answer: %s", type(exc).__name__)
        return True


def verify(cfg: Mapping[str, Any], payload: str | None) -> None:
    """Raise PowError unless `payload` solves a challenge made here, unexpired, not used before."""
    if not payload:
        raise PowError("missing")
    found = _decode(payload) if len(payload) < 2048 else None
    if found is None:
        raise PowError("wrong")
    claimed = cast(altcha.PayloadType, found)
    if not any(altcha.verify_solution(claimed, _hmac_key(key), check_expires=True)[0]
               for key in cfg["SECRET_KEYS"]):
        raise PowError("wrong")
    if not _claim(cfg, str(found["signature"])):
        raise PowError("used")


def solve(ch: Mapping[str, Any]) -> str:
    """The payload a browser would post for `ch` (for tests and benchmarks; the browser's own
    solver is static/embed-frame.js)."""
    found = altcha.solve_challenge(ch["challenge"], ch["salt"], ch["algorithm"], ch["maxnumber"], 0)
    assert found is not None, "a challenge made here always has a solution"
    return base64.b64encode(json.dumps({
        "algorithm": ch["algorithm"], "challenge": ch["challenge"], "number": found.number,
        "salt": ch["salt"], "signature": ch["signature"]}).encode()).decode()
