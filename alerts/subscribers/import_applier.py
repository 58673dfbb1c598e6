"""Applying an import's checked rows, one chunk per transaction, and queueing its emails after the commit."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from .. import queueing, tasknames, webhooks
from ..extensions import db
from ..models import (
    ConsentRecord,
    Subscriber,
    SubscriberFieldValue,
    SubscriberStatus,
    Suppression,
    email_hash,
    email_key,
    new_token_key,
    utcnow,
)
from ..webhooks import outbox
from .import_columns import PROFILE
from .import_report import DOCUMENTED, ImportReport, Problem
from .subscriptions import release_cooldown

WELCOME = "welcome"  # the email kind (alerts.subscribers.welcome)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    line: int
    raw: str
    email: str
    source: str | None
    profile: dict[str, str] = field(default_factory=dict)  # built-in fields given, checked
    values: dict[str, list[str]] = field(default_factory=dict)  # custom fields given, checked


@dataclass
class _ChunkResult:
    created: int = 0
    confirmed: int = 0
    resent: int = 0
    filled: int = 0
    problems: list[Problem] = field(default_factory=list)
    to_mail: list[int] = field(default_factory=list)
    to_welcome: list[int] = field(default_factory=list)


@dataclass
class _Sorted:
    """A chunk's rows by what the database already holds for their address."""

    new: list[Row] = field(default_factory=list)
    pending: list[tuple[Row, int]] = field(default_factory=list)  # (row, subscriber id)
    confirmed: list[tuple[Row, int]] = field(default_factory=list)  # left as they are, but for fields
    existing: dict[str, sa.Row] = field(default_factory=dict)  # by email_key


class Applier:
    """Applies one chunk of checked, unique rows in one transaction."""

    def __init__(self, consent: str, version: str, dry_run: bool, report: ImportReport,
                 field_ids: dict[str, int | None] | None = None, profile: Iterable[str] = ()):
        self.consent = consent
        # The built-in fields the file has columns for; the SQL names only these.
        self.profile = tuple(name for name in PROFILE if name in set(profile))
        self.field_ids = {k: v for k, v in (field_ids or {}).items() if v is not None}
        self.version = version
        self.dry_run = dry_run
        self.report = report
        self.welcome = report.welcome
        self.queue_broken = False

    def apply(self, rows: list[Row]) -> None:
        result = self._commit(rows)
        _count(self.report, result)
        if result.to_mail:
            self.queue_broken = _queue_confirmations(result.to_mail, rows, self.report, self.queue_broken)
        if self.welcome:
            self.report.welcomes += result.created + result.confirmed
        if result.to_welcome:
            _queue_welcomes(result.to_welcome)

    def _commit(self, rows: list[Row]) -> _ChunkResult:
        """The chunk in one transaction (a dry run rolls it back), started again on a race."""
        tries = 3
        while True:
            try:
                result = self._apply(rows)
                if self.dry_run:
                    db.session.rollback()
                else:
                    db.session.commit()
                return result
            except IntegrityError:
                # A signup for one of these addresses landed between our SELECT and INSERT:
                # start the chunk again, which now finds that subscriber.
                db.session.rollback()
                tries -= 1
                if not tries:
                    raise

    def _apply(self, rows: list[Row]) -> _ChunkResult:
        result = _ChunkResult()
        now = utcnow()
        # PostgreSQL: the known rows are locked, so no unsubscribe slips in between.
        found = _sort(rows, lock=not self.dry_run, problems=result.problems, profile=self.profile)
        result.filled = self._fill([*found.pending, *found.confirmed], found.existing)
        if self.consent == DOCUMENTED:
            self._documented(found, now, result)
        else:
            self._confirm_first(found, now, result)
        return result

    def _documented(self, found: _Sorted, now: datetime, result: _ChunkResult) -> None:
        new, pending = found.new, found.pending
        result.created = len(new)
        result.confirmed = len(pending)
        if self.dry_run:
            return
        # Their welcome is settled at once unless the importer asked for it: `welcomed_for`
        # set to this confirmation takes them out of the sweep that sends lost welcomes.
        settled = None if self.welcome else now
        ids = _insert(new, now, status=SubscriberStatus.CONFIRMED, confirmed_at=now, welcomed_for=settled,
                      profile=self.profile)
        self._insert_values(zip(ids, new, strict=True))
        if pending:
            _confirm_pending(pending, now, settled)
        if self.welcome:
            result.to_welcome = [*ids, *(sub_id for _, sub_id in pending)]
        consents = [(sub_id, row.source) for row, sub_id in zip(new, ids, strict=True)]
        consents += [(sub_id, row.source) for row, sub_id in pending]
        _consent_records(consents, "import:documented", now, self.version)
        outbox.emit_many(webhooks.SUBSCRIBER_CONFIRMED, [
            {"id": sub_id, "email": row.email, "status": SubscriberStatus.CONFIRMED.value,
             "source": row.source, "confirmed_at": now, "unsubscribed_at": None}
            for row, sub_id in [*zip(new, ids, strict=True), *pending]
        ])

    def _confirm_first(self, found: _Sorted, now: datetime, result: _ChunkResult) -> None:
        new, pending = found.new, found.pending
        cutoff = now - timedelta(seconds=current_app.config["CONFIRM_COOLDOWN_SECONDS"])
        result.created = len(new)
        if self.dry_run:
            for row, _ in pending:
                last = found.existing[email_key(row.email)].last_confirmation_at
                if last is None or last < cutoff:
                    result.resent += 1
                else:
                    result.problems.append(Problem(row.line, row.raw, "confirmation-recent"))
            return
        # New rows take their cooldown slot as they are written.
        ids = _insert(new, now, status=SubscriberStatus.PENDING, nonce=True, last_confirmation_at=now,
                      profile=self.profile)
        self._insert_values(zip(ids, new, strict=True))
        result.to_mail.extend(ids)
        claimed = _claim_cooldowns([sub_id for _, sub_id in pending], now, cutoff) if pending else set()
        consents = [(sub_id, row.source) for row, sub_id in zip(new, ids, strict=True)]
        for row, sub_id in pending:
            if sub_id in claimed:
                result.resent += 1
                result.to_mail.append(sub_id)
                consents.append((sub_id, row.source))
            else:  # left as it is: no email, nothing recorded
                result.problems.append(Problem(row.line, row.raw, "confirmation-recent"))
        _consent_records(consents, "import:confirm-first", now, self.version)

    def _insert_values(self, rows: Iterable[tuple[int, Row]],
                       skip: set[tuple[int, int]] | frozenset = frozenset()) -> None:
        """The custom fields' values of these subscribers, in one executemany INSERT."""
        params = [{"subscriber_id": sub_id, "field_id": self.field_ids[key], "value": value}
                  for sub_id, row in rows for key, vs in row.values.items()
                  if key in self.field_ids and (sub_id, self.field_ids[key]) not in skip for value in vs]
        if params:
            db.session.execute(sa.insert(SubscriberFieldValue.__table__), params)

    def _fill(self, known: list[tuple[Row, int]], existing: dict[str, sa.Row]) -> int:
        """Subscribers already on the list gain the fields they have none of (what they gave is
        never overwritten): one UPDATE and one INSERT for the chunk. How many gained any."""
        known = [(row, sub_id) for row, sub_id in known if row.profile or row.values]
        if not known:
            return 0
        have: set[tuple[int, int]] = set()
        if self.field_ids and any(row.values for row, _ in known):
            have = {(sub_id, field_id) for sub_id, field_id in db.session.execute(
                sa.select(SubscriberFieldValue.subscriber_id, SubscriberFieldValue.field_id).where(
                    _in(SubscriberFieldValue.subscriber_id, [sub_id for _, sub_id in known]),
                    _in(SubscriberFieldValue.field_id, list(self.field_ids.values()))))}
        updates: list[dict[str, object]] = []
        gained: list[tuple[int, Row]] = []
        for row, sub_id in known:
            held = existing[email_key(row.email)]
            profile = {k: v for k, v in row.profile.items() if getattr(held, k) is None}
            values = any((sub_id, self.field_ids[k]) not in have for k in row.values if k in self.field_ids)
            if profile:
                updates.append({"b_id": sub_id, **{f"b_{k}": profile.get(k) for k in self.profile}})
            if profile or values:
                gained.append((sub_id, row))
        if not self.dry_run:
            if updates:
                table = Subscriber.__table__
                db.session.execute(
                    sa.update(table).where(table.c.id == sa.bindparam("b_id")).values(
                        {k: sa.func.coalesce(table.c[k], sa.bindparam(f"b_{k}")) for k in self.profile}),
                    updates)
            self._insert_values(gained, skip=have)
        return len(gained)


def _count(report: ImportReport, result: _ChunkResult) -> None:
    report.filled += result.filled
    report.created += result.created
    report.confirmed += result.confirmed
    report.resent += result.resent
    for problem in result.problems:
        report.add(problem)


def _sort(rows: list[Row], *, lock: bool, problems: list[Problem], profile: tuple[str, ...] = ()) -> _Sorted:
    """One SELECT for the chunk's suppressions, one for its known addresses; the rows left as
    they are (suppressed, confirmed, unsubscribed) go to `problems`."""
    emails = [r.email for r in rows]
    suppressed = set(
        db.session.scalars(
            sa.select(Suppression.email_hash).where(
                _in(Suppression.email_hash, [email_hash(e) for e in emails])
            )
        )
    )
    query = sa.select(
        Subscriber.id, Subscriber.email_key, Subscriber.status, Subscriber.last_confirmation_at,
        *(getattr(Subscriber, name) for name in profile),
    ).where(_in(Subscriber.email_key, [email_key(e) for e in emails]))
    if lock:
        query = query.with_for_update()
    found = _Sorted(existing={row.email_key: row for row in db.session.execute(query)})
    for row in rows:
        if email_hash(row.email) in suppressed:
            problems.append(Problem(row.line, row.raw, "suppressed"))
            continue
        known = found.existing.get(email_key(row.email))
        if known is None:
            found.new.append(row)
        elif known.status == SubscriberStatus.CONFIRMED:
            problems.append(Problem(row.line, row.raw, "already-confirmed"))
            found.confirmed.append((row, known.id))
        elif known.status == SubscriberStatus.UNSUBSCRIBED:
            problems.append(Problem(row.line, row.raw, "unsubscribed"))
        else:
            found.pending.append((row, known.id))
    return found


def _insert(rows: list[Row], now: datetime, *, status: SubscriberStatus,
            confirmed_at: datetime | None = None, nonce: bool = False,
            last_confirmation_at: datetime | None = None,
            welcomed_for: datetime | None = None, profile: tuple[str, ...] = ()) -> list[int]:
    """One executemany INSERT, then the new ids by address, in the rows' order.

    (INSERT … RETURNING of a thousand rows is one statement with thousands of
    parameters, which psycopg parses anew each time: three times slower here.)
    """
    if not rows:
        return []
    params = [
        {
            "email": row.email,
            "email_key": email_key(row.email),
            "token_key": new_token_key(),
            "status": status.value,
            "created_at": now,
            "confirmed_at": confirmed_at,
            # A fresh nonce per pending subscriber makes each confirmation link single-use.
            "confirm_nonce": secrets.token_hex(16) if nonce else None,
            "last_confirmation_at": last_confirmation_at,
            "welcomed_for": welcomed_for,
            "source": row.source,
            **{name: row.profile.get(name) for name in profile},
        }
        for row in rows
    ]
    table = Subscriber.__table__
    db.session.execute(sa.insert(table), params)
    keys = [email_key(row.email) for row in rows]
    query = sa.select(table.c.email_key, table.c.id).where(_in(table.c.email_key, keys))
    ids = dict(db.session.execute(query).all())
    return [ids[key] for key in keys]


def _confirm_pending(pending: list[tuple[Row, int]], now: datetime, settled: datetime | None) -> None:
    """Confirmed now, on the documented consent; a source set before is kept."""
    table = Subscriber.__table__
    db.session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(status=SubscriberStatus.CONFIRMED.value, confirmed_at=now, confirm_nonce=None,
                welcomed_for=settled,
                source=sa.func.coalesce(table.c.source, sa.bindparam("b_source"))),
        [{"b_id": sub_id, "b_source": row.source} for row, sub_id in pending],
    )


def _claim_cooldowns(ids: list[int], now: datetime, cutoff: datetime) -> set[int]:
    """The pending subscribers whose last confirmation is older than the cooldown, now taken."""
    table = Subscriber.__table__
    return set(
        db.session.scalars(
            sa.update(table)
            .where(_in(table.c.id, ids),
                   sa.or_(table.c.last_confirmation_at.is_(None), table.c.last_confirmation_at < cutoff))
            .values(last_confirmation_at=now)
            .returning(table.c.id)
        )
    )


def _consent_records(consents: list[tuple[int, str | None]], event: str, now: datetime,
                     version: str) -> None:
    if not consents:
        return
    db.session.execute(
        sa.insert(ConsentRecord.__table__),
        [
            {"subscriber_id": sub_id, "event": event, "at": now, "ip": None, "user_agent": None,
             "consent_text_version": version, "source": src}
            for sub_id, src in consents
        ],
    )


def _queue_confirmations(ids: list[int], rows: list[Row], report: ImportReport, broken: bool) -> bool:
    """After the chunk's commit: its confirmations, as one fan-out task; whether the queue is
    (still) broken.

    A worker turns it into a send_confirmation task per subscriber: publishing 100,000
    tasks from here would take the import a minute and a half. If the broker is away,
    the cooldown slots taken for these subscribers are freed, so that running the
    import again (or a signup) sends the confirmation.
    """
    if not broken and queueing.publish(tasknames.QUEUE_CONFIRMATIONS, ids):
        report.queued += len(ids)
        return False
    release_cooldown(ids)
    query = sa.select(Subscriber.id, Subscriber.email_key).where(_in(Subscriber.id, ids))
    emails = dict(db.session.execute(query).all())
    db.session.rollback()
    rows_by_email = {email_key(r.email): r for r in rows}
    for sub_id in ids:
        row = rows_by_email.get(emails.get(sub_id) or "")
        if row is not None:
            report.add(Problem(row.line, row.raw, "not-queued"))
    return True


def _queue_welcomes(ids: list[int]) -> None:
    """After the chunk's commit: the welcomes asked for, as one fan-out task. If the broker
    is away they are not lost: the sweep sends welcomes not yet sent within the hour."""
    if not queueing.publish(tasknames.QUEUE_EMAILS, WELCOME, ids):
        log.warning("import: %s welcome email(s) left for the sweep (the broker is away)", len(ids),
                    extra={"welcomes": len(ids)})


def _in(column, values: list) -> sa.ColumnElement[bool]:
    """`column IN (…)`; on PostgreSQL `column = ANY(:array)`, one parameter instead of thousands."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.literal(list(values), type_=ARRAY(column.type)))
    return column.in_(values)
