"""Recording clicks: batches taken from the Redis list into the database, exactly once.

A batch is moved atomically from the list to a key of its own (a Lua script), written to
the database in one transaction together with a `click_batches` row naming it, and only
then deleted from Redis. A drainer that dies in between leaves the batch key; the next run
records it, or sees its `click_batches` row and only deletes it. One drainer runs at a time
(a Redis lock), and only clicks older than CLICK_HOLD_SECONDS are taken; a recipient's clicks
just before a batch's cut wait while more of theirs follow within CLICK_BURST_SECONDS, so a
scanner's burst is judged whole (in person mode a later batch also looks back at the rows).

TRACK_CLICKS=person writes a `clicks` row per click (with the subscriber); `aggregate` only
adds to `click_counts`, counting each recipient once per link through a Redis set of
delivery ids that expires after CLICK_RETENTION_DAYS.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask import current_app

from .. import clickcounts
from ..extensions import db
from ..models import Alert, AlertLink, Click, ClickBatch, Delivery
from . import links, machines, recording

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

BATCH_SIZE = 2000  # Lua's unpack and one INSERT stay comfortable at this size
MAX_BATCHES = 50  # per run: a beat task that ends; the next run takes the rest

_TAKE = """
local n, cutoff, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local items = redis.call('LRANGE', KEYS[1], 0, n + tonumber(ARGV[4]) - 1)
local function parse(item)
  local at, delivery = string.match(item, '^([^|]*)|[^|]*|([^|]*)|')
  return tonumber(at), delivery
end
local take = 0
for i = 1, math.min(n, #items) do
  local at = parse(items[i])
  if at ~= nil and at > cutoff then break end
  take = i
end
if take == 0 then return 0 end
-- A recipient with clicks on both sides of the cut, within a burst's window of it, keeps the
-- ones before it in the list: the next batch or run takes them with the rest, so a scanner's
-- burst is judged whole.
local cut_at = parse(items[take]) or cutoff
local later = {}
for i = take + 1, #items do
  local at, delivery = parse(items[i])
  if at ~= nil and at > cut_at + window then break end
  if delivery then later[delivery] = true end
end
local out, held = {}, {}
for i = 1, take do
  local at, delivery = parse(items[i])
  if delivery and later[delivery] and at ~= nil and at >= cut_at - window then
    held[#held + 1] = items[i]
  else
    out[#out + 1] = items[i]
  end
end
-- Cut by size (more old clicks than a batch holds), a batch of nothing but held clicks would
-- be held again at once: take them as they are.
local next_at = items[take + 1] and parse(items[take + 1])
if #out == 0 and take == n and next_at ~= nil and next_at <= cutoff then
  out, held = {unpack(items, 1, take)}, {}
end
redis.call('LTRIM', KEYS[1], take, -1)
for i = #held, 1, -1 do
  redis.call('LPUSH', KEYS[1], held[i])
end
if #out == 0 then return 0 end
redis.call('RPUSH', KEYS[2], unpack(out))
redis.call('SADD', KEYS[3], KEYS[2])
return #out
"""
# Clicks read past a batch's end to see whether a recipient's burst goes on past the cut.
LOOK_AHEAD = 200


@dataclass
class DrainResult:
    batches: int = 0
    clicks: int = 0
    machine: int = 0
    recovered: int = 0
    skipped: int = 0  # unreadable records or unknown deliveries
    busy: bool = False  # another drainer held the lock

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Batch:
    key: str
    records: list[tuple[float, int, int, int, str]] = field(default_factory=list)


def _keys() -> tuple[str, str, str]:
    base = recording.queue_key()
    return base, f"{base}:pending", f"{base}:lock"


def drain(now: float | None = None, hold: float | None = None) -> DrainResult:
    """Record every queued click older than the hold-back. Engine internal: commits per batch."""
    cfg = current_app.config
    r = recording.client()
    queue, pending, lock = _keys()
    result = DrainResult()
    owner = uuid.uuid4().hex
    if not r.set(lock, owner, nx=True, ex=300):
        result.busy = True
        return result
    try:
        for key in sorted(k.decode() for k in r.smembers(pending)):  # type: ignore[union-attr]  # redis-py types a sync reply as maybe Awaitable
            result.recovered += 1
            _record_batch(r, key, result)
        take = r.register_script(_TAKE)
        hold = cfg["CLICK_HOLD_SECONDS"] if hold is None else hold
        cutoff = (time.time() if now is None else now) - hold
        for _ in range(MAX_BATCHES):
            key = f"{queue}:batch:{uuid.uuid4().hex}"
            if not take(keys=[queue, key, pending],
                        args=[BATCH_SIZE, f"{cutoff:.3f}", cfg["CLICK_BURST_SECONDS"], LOOK_AHEAD]):
                break
            _record_batch(r, key, result)
    finally:
        if r.get(lock) == owner.encode():
            r.delete(lock)
    return result


def _record_batch(r: redis.Redis, key: str, result: DrainResult) -> None:
    _, pending, _ = _keys()
    batch_id = key.rsplit(":", 1)[-1]
    if db.session.get(ClickBatch, batch_id) is None:
        batch = _Batch(key)
        for item in r.lrange(key, 0, -1):  # type: ignore[union-attr]  # redis-py types a sync reply as maybe Awaitable
            rec = recording.decode(item)
            if rec is None:
                result.skipped += 1
            else:
                batch.records.append(rec)
        after_commit = _write(batch, result)
        db.session.add(ClickBatch(id=batch_id))
        db.session.commit()
        after_commit(r)
        result.batches += 1
    else:
        db.session.rollback()
    r.delete(key)
    r.srem(pending, key)


def _write(batch: _Batch, result: DrainResult) -> Callable[[redis.Redis], None]:
    """Classify and write one batch (not committed); returns what to do in Redis after the commit."""
    cfg = current_app.config
    window = cfg["CLICK_BURST_SECONDS"]
    delivery_ids = {rec[2] for rec in batch.records}
    deliveries = {
        row.id: row for row in db.session.execute(
            sa.select(Delivery.id, Delivery.alert_id, Delivery.subscriber_id)
            .where(Delivery.id.in_(delivery_ids))
        )
    } if delivery_ids else {}
    records = []
    for rec in batch.records:
        d = deliveries.get(rec[2])
        if d is None or d.alert_id != rec[1]:
            result.skipped += 1  # the alert or delivery is gone (deleted since)
            continue
        records.append(rec)
    alert_ids = {rec[1] for rec in records}
    action_of = {
        (row.alert_id, row.link_index): row.action_id for row in db.session.execute(
            sa.select(AlertLink.alert_id, AlertLink.link_index, AlertLink.action_id)
            .where(AlertLink.alert_id.in_(alert_ids))
        )
    } if alert_ids else {}
    started = dict(db.session.execute(
        sa.select(Alert.id, Alert.started_at).where(Alert.id.in_(alert_ids))
    ).all()) if alert_ids else {}

    # Earlier clicks of the same recipients that a burst in this batch may include: people's
    # clicks, and a burst's that an earlier drain found (a burst split between two batches).
    per_person = links.mode() == links.PERSON
    earlier: dict[int, list[tuple[int, float, int, bool]]] = {}
    if per_person and records:
        since = datetime.fromtimestamp(min(rec[0] for rec in records) - window, UTC)
        for row in db.session.execute(
            sa.select(Click.id, Click.delivery_id, Click.at, Click.link_index, Click.machine)
            .where(Click.delivery_id.in_({rec[2] for rec in records}), Click.at >= since,
                   sa.or_(Click.machine.is_(False), Click.machine_reason == machines.BURST))
        ):
            earlier.setdefault(row.delivery_id, []).append(
                (row.id, row.at.timestamp(), row.link_index, row.machine))

    reason: list[str | None] = [rec[4] or None for rec in records]
    machine = [bool(rec[4]) for rec in records]
    by_delivery: dict[int, list[int]] = {}
    for i, rec in enumerate(records):
        if not machine[i] and rec[3] != clickcounts.OPENS:
            by_delivery.setdefault(rec[2], []).append(i)
    now_machine: list[int] = []  # earlier rows that turn out to be part of a burst
    for delivery_id, positions in by_delivery.items():
        old = earlier.get(delivery_id, [])
        clicks = [(records[i][0], records[i][3]) for i in positions] + [(at, li) for _, at, li, _ in old]
        for k in machines.bursts(clicks, window):
            if k < len(positions):
                machine[positions[k]] = True
                reason[positions[k]] = machines.BURST
            elif not old[k - len(positions)][3]:
                now_machine.append(old[k - len(positions)][0])
    if now_machine:
        db.session.execute(sa.update(Click).where(Click.id.in_(now_machine))
                           .values(machine=True, machine_reason=machines.BURST))

    result.clicks += len(records)
    result.machine += sum(machine) + len(now_machine)
    rows = []
    anonymous: dict[int, list[clickcounts.ClickEvent]] = {}
    for rec, is_machine, why in zip(records, machine, reason, strict=True):
        at, alert_id, delivery_id, link_index, _ = rec
        when = datetime.fromtimestamp(at, UTC)
        subscriber_id = deliveries[delivery_id].subscriber_id
        if per_person and subscriber_id is not None and link_index != clickcounts.OPENS:
            rows.append({"alert_id": alert_id, "delivery_id": delivery_id, "subscriber_id": subscriber_id,
                         "link_index": link_index, "action_id": action_of.get((alert_id, link_index)),
                         "machine": is_machine, "machine_reason": why, "at": when})
        else:
            anonymous.setdefault(alert_id, []).append(
                clickcounts.ClickEvent(delivery_id, link_index, is_machine, when))
    if rows:
        db.session.execute(sa.insert(Click), rows)
    return _aggregate(anonymous, started)


def _seen_key(alert_id: int) -> str:
    return f"{recording.queue_key()}:seen:{alert_id}"


def _aggregate(events: dict[int, list[clickcounts.ClickEvent]],
               started: dict) -> Callable[[redis.Redis], None]:
    """Counters for clicks kept without a person; each recipient counted once per link via Redis."""
    if not events:
        return lambda r: None
    r = recording.client()
    new_members: dict[int, set[str]] = {}
    for alert_id, items in events.items():
        humans = [e for e in items if not e.machine]
        members = sorted({f"{e.who}:{e.link_index}" for e in humans}
                         | {str(e.who) for e in humans if e.link_index != clickcounts.OPENS})
        known = set()
        if members:
            pipe = r.pipeline()
            for member in members:
                pipe.sismember(_seen_key(alert_id), member)
            flags = pipe.execute()
            known = {m for m, flag in zip(members, flags, strict=True) if flag}
        tally = clickcounts.Tally()
        seen = set(known)
        for e in sorted(items, key=lambda e: e.at):
            first_link = first_alert = False
            if not e.machine:
                pair, who = f"{e.who}:{e.link_index}", str(e.who)
                first_link, first_alert = pair not in seen, who not in seen
                seen.add(pair)
                if e.link_index != clickcounts.OPENS:  # an open is not a click on the alert
                    seen.add(who)
            clickcounts.count_click(tally, e, started.get(alert_id), first_link, first_alert)
        clickcounts.add(alert_id, tally)
        new_members[alert_id] = seen - known

    def remember(r: redis.Redis) -> None:
        ttl = current_app.config["CLICK_RETENTION_DAYS"] * 86400
        pipe = r.pipeline()
        for alert_id, members in new_members.items():
            if members:
                pipe.sadd(_seen_key(alert_id), *members)
                pipe.expire(_seen_key(alert_id), ttl)
        pipe.execute()

    return remember
