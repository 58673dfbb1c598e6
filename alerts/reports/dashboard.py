"""The staff home's series, per UTC day over the last DAYS days: one grouped query each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from .. import i18n, listcounts
from ..extensions import Column, db
from ..models import Action, ConsentRecord, Signature, Subscriber, SubscriberStatus, utcnow

if TYPE_CHECKING:
    from datetime import datetime

DAYS = 30
SIGNUP_EVENTS = ("signup", "import:documented", "import:confirm-first")


@dataclass(frozen=True)
class Series:
    days: list[date]
    values: list[int]

    @property
    def total(self) -> int:
        return sum(self.values)


def _day(column: Column) -> sa.ColumnElement[Any]:
    """The UTC calendar day of a timestamp column, on SQLite and PostgreSQL alike."""
    if db.session.get_bind().dialect.name == "postgresql":
        return sa.func.date(sa.func.timezone("UTC", column))
    return sa.func.date(column)


def window(days: int = DAYS) -> list[date]:
    today = utcnow().date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _since(days: list[date]) -> datetime:
    from datetime import UTC, datetime

    return datetime.combine(days[0], datetime.min.time(), UTC)


def _per_day(column: Column, *where: sa.ColumnElement[bool], days: list[date]) -> tuple[Series, int]:
    """The series, and the total since the window began (rows on a later day included)."""
    rows = db.session.execute(
        sa.select(_day(column).label("d"), sa.func.count())
        .where(column >= _since(days), *where).group_by("d")
    ).all()
    by = {str(d): n for d, n in rows}
    return Series(days, [by.get(d.isoformat(), 0) for d in days]), sum(by.values())


def per_day(column: Column, *where: sa.ColumnElement[bool], days: list[date] | None = None) -> Series:
    return _per_day(column, *where, days=days or window())[0]


def list_size(days: list[date] | None = None, *, joined: tuple[Series, int] | None = None) -> Series:
    """Confirmed subscribers at the end of each day (as the rows now stand: erased people are gone).

    Counted back from the list as it stands now (a cached whole-list count, listcounts.on_list)
    through the window's confirmations and unsubscribes, which the indexes read alone: a
    subscriber is on the list at t when confirmed before t and not unsubscribed between.
    `joined` is confirmations_and_total(days), when the caller has it already.
    """
    days = days or window()
    confirmed, joined_total = joined or confirmations_and_total(days)
    left, left_total = _per_day(Subscriber.unsubscribed_at, Subscriber.confirmed_at.is_not(None),
                                Subscriber.unsubscribed_at >= Subscriber.confirmed_at, days=days)
    values, size = [], listcounts.on_list() - joined_total + left_total
    for plus, minus in zip(confirmed.values, left.values, strict=True):
        size += plus - minus
        values.append(size)
    return Series(days, values)


def confirmations_and_total(days: list[date]) -> tuple[Series, int]:
    """Confirmations per day, and since the window began (what list_size counts back through)."""
    return _per_day(Subscriber.confirmed_at, days=days)


def confirmations(days: list[date] | None = None) -> Series:
    return per_day(Subscriber.confirmed_at, days=days)


def unsubscribes(days: list[date] | None = None) -> Series:
    return per_day(ConsentRecord.at, ConsentRecord.event.like("unsubscribe%"), days=days)


def signups_by_source(days: list[date] | None = None, limit: int = 8) -> list[tuple[str, int]]:
    days = days or window()
    rows = db.session.execute(
        sa.select(sa.func.coalesce(ConsentRecord.source, "unknown").label("s"), sa.func.count().label("n"))
        .where(ConsentRecord.event.in_(SIGNUP_EVENTS), ConsentRecord.at >= _since(days))
        .group_by("s").order_by(sa.desc("n"), "s")
    ).all()
    top = [(s, n) for s, n in rows[:limit]]
    rest = sum(n for _, n in rows[limit:])
    return top + ([("other sources", rest)] if rest else [])


NO_CODE = "(no source code)"


def signatures_by_source_code(days: list[date] | None = None, limit: int = 8) -> list[tuple[str, int]]:
    """Signatures made in the window per `?source=` code, the biggest first; the rest summed."""
    days = days or window()
    code = sa.func.coalesce(Signature.source_code, NO_CODE).label("c")
    rows = db.session.execute(
        sa.select(code, sa.func.count().label("n"))
        .where(Signature.created_at >= _since(days))
        .group_by(code).order_by(sa.desc("n"), code)
    ).all()
    top = [(c, n) for c, n in rows[:limit]]
    rest = sum(n for _, n in rows[limit:])
    return top + ([("other codes", rest)] if rest else [])


def signatures_per_action(days: list[date] | None = None) -> list[tuple[Action, Series]]:
    """Every action with a signature in the window, in Action Center order."""
    days = days or window()
    rows = db.session.execute(
        sa.select(Signature.action_id, _day(Signature.created_at).label("d"), sa.func.count())
        .where(Signature.created_at >= _since(days)).group_by(Signature.action_id, "d")
    ).all()
    by: dict[int, dict[str, int]] = {}
    for action_id, d, n in rows:
        by.setdefault(action_id, {})[str(d)] = n
    actions = db.session.scalars(
        sa.select(Action).where(Action.id.in_(list(by))).order_by(Action.position, Action.id)
    ).all() if by else []
    return [(a, Series(days, [by[a.id].get(d.isoformat(), 0) for d in days])) for a in actions]


def readers_by_language() -> list[tuple[str, int]]:
    """Confirmed subscribers per language they read (none stored, or one not offered: the
    default), in LANGUAGES order: one grouped query."""
    counts = dict.fromkeys(i18n.languages(), 0)
    for stored, n in db.session.execute(
            sa.select(Subscriber.language, sa.func.count())
            .where(Subscriber.status == SubscriberStatus.CONFIRMED).group_by(Subscriber.language)):
        counts[i18n.language_of(stored)] += n
    return [(i18n.STAFF_NAMES.get(code, code), n) for code, n in counts.items()]
