"""How fast each relay (and each destination domain) is sent to, shared by every worker in Redis.

Four things, each one Redis round trip, all keyed by the relay's name (never its password):

- a **token bucket** per relay: the rate is SMTP_MAX_RATE (or the relay's `max_rate`), or,
  once the relay has pushed back, the adaptive rate below, whichever is lower. Workers take
  tokens in chunks (growing to UNPACED_CHUNK while a relay is unpaced), so pacing costs one
  round trip per chunk, not per message;
- **AIMD**: a throttle answer halves the relay's rate (from what it was accepting over the
  last two seconds, at most once a second); every second without one it climbs back, fast up
  to 90% of where the push-back came and by 10% a second beyond, so the pace settles just
  under what the relay accepts. The first push-back of an unpaced relay comes too soon to
  measure it, so the rate then doubles every second until the next one (TCP's slow start).
  Ten quiet minutes (or reaching the configured rate) clear it;
- **connection slots**: a sorted set of leases (they expire, so a dead worker's slot frees
  itself) capped by SMTP_MAX_CONNECTIONS, or by what the relay told us with "too many
  connections" (remembered for five minutes);
- a **circuit breaker**: a relay that does not answer is skipped for 1, 2, 4 … 30 s; one
  that answers but refuses service (a bare 421: restarting, in maintenance) for 1, 2, 4, 5 s,
  so that sending is back at full speed within seconds of its return.

When Redis itself is away, pacing fails open (the relay still pushes back and nothing is
lost by sending); the blast engine never stops on a pacing error.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import redis

from .. import redis_conn
from .smtp import MailConfigError

log = logging.getLogger(__name__)

PREFIX = "alerts:relay:"
SLOT_TTL = 60  # a connection's lease; refreshed while it is used
SLOT_REFRESH = 20
LEARNED_CAP_TTL = 300
BREAKER_MAX = 30
ANSWERED_BREAKER_MAX = 5  # a relay that answers "421" is cheap to ask again

_ACQUIRE = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local n, ok, cfg = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ok > 0 then
  local k = KEYS[2] .. sec
  redis.call('INCRBY', k, ok)
  redis.call('EXPIRE', k, 10)
end
local h = redis.call('HMGET', KEYS[1], 'rate', 'tokens', 'ts', 'changed', 'peak', 'cut')
local rate, tokens, ts = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
local changed, peak, cut = tonumber(h[4]) or now, tonumber(h[5]) or 0, tonumber(h[6]) or 0
if rate and now - changed >= 1 then
  local steps = math.min(10, math.floor(now - changed))
  for i = 1, steps do
    if peak <= 0 then
      rate = rate * 2  -- slow start: the first push-back came too early to measure the relay
    elseif rate < 0.9 * peak - 0.01 then
      rate = math.min(0.9 * peak, rate + math.max(0.5, 0.75 * (0.9 * peak - rate)))
    else
      rate = rate + math.max(0.2, 0.1 * rate)
    end
  end
  if (cfg > 0 and rate >= cfg) or now - cut > 600 then
    redis.call('HDEL', KEYS[1], 'rate', 'peak', 'cut', 'reason')
    rate = nil
  else
    redis.call('HSET', KEYS[1], 'rate', rate, 'changed', now)
  end
end
local limit = rate
if cfg > 0 and (not limit or cfg < limit) then limit = cfg end
if not limit then return {n, '0', 1} end
local burst = math.max(1, limit / 10)
if not tokens or not ts then tokens, ts = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - ts) * limit)
local grant = math.min(n, math.floor(tokens))
if grant >= 1 then tokens = tokens - grant end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
redis.call('EXPIRE', KEYS[1], 3600)
if grant >= 1 then return {grant, '0', 0} end
return {0, tostring((1 - tokens) / limit), 0}
"""

_PUSH_BACK = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec + tonumber(t[2]) / 1000000
local cfg, ok = tonumber(ARGV[2]), tonumber(ARGV[3])
if ok > 0 then
  redis.call('INCRBY', KEYS[2] .. sec, ok)
  redis.call('EXPIRE', KEYS[2] .. sec, 10)
end
local h = redis.call('HMGET', KEYS[1], 'rate', 'cut')
local rate, cut = tonumber(h[1]), tonumber(h[2]) or 0
if now - cut < 1 then return tostring(rate or 0) end
local function count(s) return tonumber(redis.call('GET', KEYS[2] .. s) or '0') or 0 end
-- what the relay was accepting: the last two whole seconds, or this one so far if more
local base = math.max((count(sec - 1) + count(sec - 2)) / 2,
                      count(sec) / math.max(0.25, now - sec))
local limit = rate
if cfg > 0 and (not limit or cfg < limit) then limit = cfg end
if limit and (base <= 0 or limit < base) then base = limit end
if base <= 0 then base = 2 end
local new = math.max(0.5, base / 2)
-- The first push-back of a relay sent to as fast as possible comes after a few ms: too soon
-- to know its rate. Then double every second (slow start) until it pushes back again.
local peak = base
if not rate then peak = 0 end
redis.call('HSET', KEYS[1], 'rate', new, 'peak', peak, 'cut', now, 'changed', now,
           'reason', ARGV[1], 'tokens', 0, 'ts', now)
redis.call('HINCRBY', KEYS[1], 'pushbacks', 1)
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(new)
"""

_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local cap = tonumber(ARGV[2])
local learned = tonumber(redis.call('GET', KEYS[2]) or '')
if learned and (cap == 0 or learned < cap) then cap = learned end
if cap == 0 or redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], 2 * tonumber(ARGV[3]))
  return 1
end
return 0
"""


def _key(name: str) -> str:
    return PREFIX + name


@dataclass
class Limits:
    """What an operator set for one relay or destination domain (None: no limit)."""

    max_rate: float | None = None
    max_connections: int | None = None
    per_connection: int | None = None  # messages before a fresh connection (Yahoo: about 20)


_DOMAIN_KEYS = {"connections": ("max_connections", int), "rate": ("max_rate", float),
                "per_connection": ("per_connection", int)}


def parse_domain_limits(text: str) -> dict[str, Limits]:
    """SMTP_DOMAIN_LIMITS: "yahoo.com=connections:2,rate:10,per_connection:20; gmail.com=connections:4"."""
    out: dict[str, Limits] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        domain, eq, spec = part.partition("=")
        domain = domain.strip().lower()
        if not eq or not domain or "@" in domain:
            raise MailConfigError(f"SMTP_DOMAIN_LIMITS: {part!r} is not domain=name:value,…")
        limits = Limits()
        for item in (i.strip() for i in spec.split(",") if i.strip()):
            name, _, raw = item.partition(":")
            if name.strip() not in _DOMAIN_KEYS:
                raise MailConfigError(f"SMTP_DOMAIN_LIMITS: unknown limit {name.strip()!r} for {domain} "
                                      f"(connections, rate, per_connection)")
            attr, kind = _DOMAIN_KEYS[name.strip()]
            try:
                value = kind(raw.strip())
            except ValueError as exc:
                raise MailConfigError(f"SMTP_DOMAIN_LIMITS: {item!r} for {domain} is not a number") from exc
            if value <= 0:
                raise MailConfigError(f"SMTP_DOMAIN_LIMITS: {item!r} for {domain} must be more than 0")
            setattr(limits, attr, value)
        out[domain] = limits
    return out


class Pacing:
    """The Redis side of pacing, one per process (the scripts are registered once)."""

    def __init__(self, client: redis.Redis):
        self.r = client
        self._acquire = client.register_script(_ACQUIRE)
        self._push_back = client.register_script(_PUSH_BACK)
        self._slot = client.register_script(_SLOT)

    # -- token bucket and AIMD --------------------------------------------------------
    def acquire(self, name: str, n: int, ok: int, max_rate: float | None) -> tuple[int, float, bool]:
        """Up to n tokens now (and report ok successes); (0, seconds) means wait that long.
        The third value says the relay is unpaced (no rate set, no push-back standing)."""
        k = _key(name)
        granted, wait, unpaced = self._acquire(keys=[k, k + ":ok:"], args=[n, ok, max_rate or 0])
        return int(granted), float(wait), bool(unpaced)

    def push_back(self, name: str, reason: str, max_rate: float | None, ok: int = 0) -> float:
        """The relay asked us to slow down: halve its rate (at most once a second); the new rate."""
        k = _key(name)
        return float(self._push_back(keys=[k, k + ":ok:"], args=[reason[:300], max_rate or 0, ok]))

    # -- connection slots ------------------------------------------------------------
    def take_slot(self, name: str, token: str, cap: int | None) -> bool:
        k = _key(name)
        return bool(self._slot(keys=[k + ":conn", k + ":conncap"], args=[token, cap or 0, SLOT_TTL]))

    def refresh_slot(self, name: str, token: str) -> None:
        self.r.zadd(_key(name) + ":conn", {token: time.time() + SLOT_TTL}, xx=True)

    def release_slot(self, name: str, token: str) -> None:
        self.r.zrem(_key(name) + ":conn", token)

    def too_many_connections(self, name: str, reason: str) -> int:
        """The relay refused a connection as one too many: remember fewer than we had."""
        k = _key(name)
        now = time.time()
        self.r.zremrangebyscore(k + ":conn", "-inf", now)
        in_use = self.r.zcard(k + ":conn")
        cap = max(1, in_use - 1)  # type: ignore[operator]  # our own slot is in in_use; redis-py: maybe Awaitable
        pipe = self.r.pipeline()
        pipe.set(k + ":conncap", cap, ex=LEARNED_CAP_TTL)
        pipe.hset(k, mapping={"conn_reason": reason[:300]})
        pipe.expire(k, 3600)
        pipe.execute()
        return cap

    # -- circuit breaker ---------------------------------------------------------------
    def mark_down(self, name: str, reason: str, *, answered: bool = False) -> int:
        """A relay that does not answer is skipped for 1, 2, 4 … 30 s, one that answered with
        a refusal of service for at most ANSWERED_BREAKER_MAX; returns the period."""
        k = _key(name)
        fails = self.r.incr(k + ":fails")
        self.r.expire(k + ":fails", 600)
        longest = ANSWERED_BREAKER_MAX if answered else BREAKER_MAX
        period = min(longest, 2 ** min(fails - 1, 10))  # type: ignore[operator]  # redis-py types a sync reply as maybe Awaitable
        self.r.set(k + ":down", reason[:300], ex=period)
        return period

    def mark_up(self, name: str) -> None:
        k = _key(name)
        self.r.delete(k + ":fails", k + ":down")

    def back_in(self, names: list[str]) -> float | None:
        """Seconds until the first of these relays may be tried again (None: none is skipped)."""
        pipe = self.r.pipeline()
        for n in names:
            pipe.pttl(_key(n) + ":down")
        left = [ms / 1000 for ms in pipe.execute() if ms and ms > 0]
        return min(left, default=None)

    def down(self, names: list[str]) -> dict[str, str]:
        """Which of these relays are skipped now, and why."""
        values = self.r.mget([_key(n) + ":down" for n in names])
        return {n: v.decode(errors="replace")
                for n, v in zip(names, values, strict=True)  # type: ignore[arg-type]  # redis-py: maybe Awaitable
                if v}

    # -- what staff see ----------------------------------------------------------------
    def describe(self, name: str, limits: Limits) -> dict:
        k = _key(name)
        now = time.time()
        pipe = self.r.pipeline()
        pipe.hgetall(k)
        pipe.zcount(k + ":conn", now, "+inf")
        pipe.get(k + ":conncap")
        pipe.get(k + ":down")
        sec = int(now)
        pipe.mget([f"{k}:ok:{sec - 1}", f"{k}:ok:{sec - 2}", f"{k}:ok:{sec - 3}"])
        h, conns, learned, down, oks = pipe.execute()
        h = {a.decode(): b.decode(errors="replace") for a, b in h.items()}
        adaptive = float(h["rate"]) if "rate" in h else None
        limit = min([x for x in (adaptive, limits.max_rate) if x], default=None)
        cap = min([int(x) for x in (learned, limits.max_connections) if x], default=None)
        if down:
            why = f"skipped until it recovers: {down.decode(errors='replace')}"
        elif adaptive is not None and (limits.max_rate is None or adaptive < limits.max_rate):
            why = (f"relay asked us to slow down ({h.get('reason', 'throttled')}); "
                   f"now {limit:.1f} messages/s and speeding up again")
        elif limits.max_rate:
            why = "at the configured maximum rate"
        else:
            why = "as fast as the relay accepts"
        return {
            "relay": name,
            "state": "down" if down else "throttled" if adaptive is not None else "ok",
            "rate_limit": round(limit, 1) if limit else None,
            "configured_rate": limits.max_rate,
            "accepted_per_second": round(sum(int(x or 0) for x in oks) / 3, 1),
            "connections": conns,
            "connection_limit": cap,
            "connection_reason": h.get("conn_reason") if learned else None,
            "push_backs": int(h.get("pushbacks", 0)),
            "why": why,
        }

    def reset(self) -> None:
        """Forget every relay's pace and health (tests, and `alerts` after a relay change)."""
        keys = list(self.r.scan_iter(PREFIX + "*", count=500))
        if keys:
            self.r.delete(*keys)


_clients: dict[str, Pacing] = {}
_clients_lock = threading.Lock()


def for_url(redis_url: str | None) -> Pacing | None:
    """The process's Pacing for this Redis (None when there is no Redis: no pacing)."""
    if not redis_url:
        return None
    with _clients_lock:
        found = _clients.get(redis_url)
        if found is None:
            found = _clients[redis_url] = Pacing(redis_conn.client(redis_url))
        return found
