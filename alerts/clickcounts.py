"""The per-link click counters' one owner: how clicks are tallied, added to, and folded into.

The same `tally` counts an alert's per-person rows for its report and turns rows into
counters when they are folded away (retention, erasure), so the figures do not move when
the rows go.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from .extensions import db, upsert
from .models import Alert, Click, ClickCount

ALERT_WIDE = -1  # the link_index of an alert's whole-alert counters (unique people)
OPENS = -2  # the link_index of an alert's open counters (TRACK_OPENS=on; "clicks" there are opens)
COUNTERS = ("clicks", "unique_clicks", "machine_clicks", "clicks_hour", "unique_hour",
            "clicks_day", "unique_day", "clicks_week", "unique_week")
WINDOWS = (("hour", timedelta(hours=1)), ("day", timedelta(days=1)), ("week", timedelta(days=7)))


@dataclass(frozen=True)
class ClickEvent:
    """One click as counting sees it; `who` is the delivery (None: nobody to tell apart)."""

    who: int | None
    link_index: int
    machine: bool
    at: datetime


@dataclass
class Tally:
    """Counters per link_index (ALERT_WIDE for the alert as a whole)."""

    by_link: dict[int, dict[str, int]] = field(default_factory=dict)

    def row(self, link_index: int) -> dict[str, int]:
        return self.by_link.setdefault(link_index, dict.fromkeys(COUNTERS, 0))

    def add(self, other: Tally) -> Tally:
        for link_index, counts in other.by_link.items():
            mine = self.row(link_index)
            for name, n in counts.items():
                mine[name] += n
        return self


def count_click(tally: Tally, event: ClickEvent, started_at: datetime | None,
                first_for_link: bool, first_for_alert: bool) -> None:
    """Add one click to `tally`; the caller says whether it is the person's first (human) one."""
    targets = [(event.link_index, first_for_link)]
    if event.link_index != OPENS:
        targets.append((ALERT_WIDE, first_for_alert))
    for link_index, first in targets:
        row = tally.row(link_index)
        if event.machine:
            row["machine_clicks"] += 1
            continue
        row["clicks"] += 1
        row["unique_clicks"] += first
        age = event.at - started_at if started_at else None
        for name, span in WINDOWS:
            if age is not None and age < span:
                row[f"clicks_{name}"] += 1
                row[f"unique_{name}"] += first


def tally(events: Iterable[ClickEvent], started_at: datetime | None) -> Tally:
    """Human clicks total and unique (first per recipient), machine clicks, and the same per window."""
    out = Tally()
    seen: set = set()
    for n, event in enumerate(sorted(events, key=lambda e: e.at)):
        who = event.who if event.who is not None else ("row", n)
        first_link = first_alert = False
        if not event.machine:
            first_link = (who, event.link_index) not in seen
            first_alert = who not in seen
            seen.update({(who, event.link_index), who})
        count_click(out, event, started_at, first_link, first_alert)
    return out


def add(alert_id: int, counts: Tally) -> None:
    """Add to the stored counters (one upsert per link). The caller commits."""
    rows = [{"alert_id": alert_id, "link_index": i, **c} for i, c in counts.by_link.items()]
    if not rows:
        return
    stmt = upsert(ClickCount)
    stmt = stmt.on_conflict_do_update(
        index_elements=["alert_id", "link_index"],
        set_={name: getattr(ClickCount, name) + getattr(stmt.excluded, name) for name in COUNTERS},
    )
    db.session.execute(stmt, rows)


def stored(alert_id: int) -> Tally:
    out = Tally()
    for row in db.session.scalars(sa.select(ClickCount).where(ClickCount.alert_id == alert_id)):
        out.by_link[row.link_index] = {name: getattr(row, name) for name in COUNTERS}
    return out


def events(where: sa.ColumnElement[bool]) -> dict[int, list[ClickEvent]]:
    """Per-person click rows matching `where`, as events per alert."""
    out: dict[int, list[ClickEvent]] = {}
    rows = db.session.execute(
        sa.select(Click.alert_id, Click.delivery_id, Click.link_index, Click.machine, Click.at).where(where)
    )
    for r in rows:
        out.setdefault(r.alert_id, []).append(ClickEvent(r.delivery_id, r.link_index, r.machine, r.at))
    return out


def fold(where: sa.ColumnElement[bool]) -> int:
    """Turn the per-person rows matching `where` into counters, then delete them; returns how many.

    Exact when the rows are all of a recipient's clicks on an alert (erasure) or all of an
    alert's (retention). The caller commits.
    """
    by_alert = events(where)
    if not by_alert:
        return 0
    started = dict(db.session.execute(
        sa.select(Alert.id, Alert.started_at).where(Alert.id.in_(list(by_alert)))
    ).all())
    for alert_id, items in by_alert.items():
        add(alert_id, tally(items, started.get(alert_id)))
    db.session.execute(sa.delete(Click).where(where))
    return sum(len(items) for items in by_alert.values())
