"""One connection's view of the shared pacing (alerts/mail/pacing.py): which relay, and when to send.

A connection takes its relay's tokens in chunks and its connection slot through a Pacer;
Redis errors are logged and sending goes on unpaced (pacing fails open).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import redis

from .pacing import SLOT_REFRESH, Limits, Pacing
from .smtp import Relay

log = logging.getLogger(__name__)


def choose(relays: list[Relay], down: Iterable[str], exclude: Iterable[str] = ()) -> Relay | None:
    """A relay for the next connection: the healthy ones of the lowest priority, by weight."""
    skip = set(down) | set(exclude)
    healthy = [r for r in relays if r.name not in skip]
    if not healthy:
        return None
    first = min(r.priority for r in healthy)
    group = [r for r in healthy if r.priority == first]
    return random.choices(group, weights=[r.weight for r in group])[0]


CHUNK = 20  # tokens asked for at once
UNPACED_CHUNK = 320  # at most, from a relay with no rate: about a tenth of a second's sending


class Pacer:
    """One connection's view of one relay or domain: tokens taken in chunks, outcomes reported."""

    def __init__(self, pacing: Pacing | None, name: str, limits: Limits, chunk: int = CHUNK):
        self.pacing = pacing
        self.name = name
        self.limits = limits
        self.base_chunk = self.chunk = chunk
        self._tokens = 0
        self._ok = 0
        self._slot: str | None = None
        self._slot_refreshed = 0.0

    def _safe(self, fn: Any, *args: object, default: Any = None) -> Any:
        # fn: `self.pacing and self.pacing.<method>`, a method whenever pacing is set
        if self.pacing is None:
            return default
        try:
            return fn(*args)
        except redis.RedisError as exc:
            log.warning("pacing for %s unavailable (%s): sending unpaced", self.name, exc)
            return default

    def take(self, stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait for one message's token; False if `stop()` became true while waiting."""
        if self._tokens > 0:
            self._tokens -= 1
            return True
        while True:
            granted, wait, unpaced = self._safe(
                self.pacing and self.pacing.acquire, self.name, self.chunk, self._ok,
                self.limits.max_rate, default=(self.chunk, 0.0, False))
            self._ok = 0
            # An unpaced relay's tokens cost nothing, only the round trip to ask: ask for
            # twice as many each time (a push-back then reaches this connection within
            # UNPACED_CHUNK messages); a paced one is asked CHUNK at a time, as its bucket allows.
            self.chunk = min(2 * self.chunk, UNPACED_CHUNK) if unpaced else self.base_chunk
            if granted:
                self._tokens = granted - 1
                return True
            if stop():
                return False
            time.sleep(min(max(wait, 0.001), 0.5))
            self.refresh_slot()

    def has_token(self) -> bool:
        """Whether `take` would return at once, without asking Redis or waiting."""
        return self._tokens > 0

    def ok(self) -> None:
        self._ok += 1

    def push_back(self, reason: str) -> float | None:
        self._tokens = 0
        self.chunk = self.base_chunk
        ok, self._ok = self._ok, 0
        return self._safe(self.pacing and self.pacing.push_back, self.name, reason,
                          self.limits.max_rate, ok)

    def flush(self) -> None:
        """Report the successes not yet counted (they feed the relay's accepted rate)."""
        if self._ok:
            self._safe(self.pacing and self.pacing.acquire, self.name, 0, self._ok, 0)
            self._ok = 0

    # connection slots
    def take_slot(self, wait: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """A connection slot, waiting up to `wait` seconds; True when held (or when unpaced)."""
        self._slot = uuid.uuid4().hex
        deadline = time.monotonic() + wait
        while True:
            got = self._safe(self.pacing and self.pacing.take_slot, self.name, self._slot,
                             self.limits.max_connections, default=True)
            if got:
                self._slot_refreshed = time.monotonic()
                return True
            if time.monotonic() > deadline or stop():
                self._slot = None
                return False
            time.sleep(0.1 + random.random() * 0.1)

    def refresh_slot(self) -> None:
        if self._slot and time.monotonic() - self._slot_refreshed > SLOT_REFRESH:
            self._slot_refreshed = time.monotonic()
            self._safe(self.pacing and self.pacing.refresh_slot, self.name, self._slot)

    def release_slot(self) -> None:
        if self._slot:
            self._safe(self.pacing and self.pacing.release_slot, self.name, self._slot)
            self._slot = None

    def too_many_connections(self, reason: str) -> None:
        self._safe(self.pacing and self.pacing.too_many_connections, self.name, reason)
