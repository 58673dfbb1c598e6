"""Rate limits a hot view counts itself: every limit of a request in one round trip to the
limiter's storage, with the decorators' fallback (in memory while Redis is away).

`@limiter.limit` costs a request about 0.3 ms of CPU in Flask-Limiter's own bookkeeping, and
each limit its own round trip; the signup and signing views count here instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import lru_cache

from flask import current_app
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import TooManyRequests

from ..extensions import limiter


@lru_cache(maxsize=32)
def limits_of(spec: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(spec))


def check(counted: Iterable[tuple[str, str]]) -> None:
    """Count this request against each (limit spec, key); a breach is the usual 429 page, with
    Retry-After."""
    prefix = current_app.config.get("RATELIMIT_KEY_PREFIX", "")
    hits = [(item, prefix, key) for spec, key in counted for item in limits_of(spec)]
    breached = limiter.hit_all(hits)
    if breached is not None:
        item, _, key = hits[breached]
        reset = limiter.reset_at(item, prefix, key)
        raise TooManyRequests(retry_after=max(1, int(reset - time.time())))
