"""Extensions created unbound here and bound in create_app, so modules can import them."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import flask
import flask_limiter
import redis
import sqlalchemy as sa
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter, RateLimiter
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, QueryableAttribute

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:
        __table__: ClassVar[sa.Table]  # every model names a table (DeclarativeBase says FromClause)


log = logging.getLogger(__name__)
_T = TypeVar("_T")


class Limiter(flask_limiter.Limiter):
    """Flask-Limiter, plus `hit` and `reset_at` for limits a view counts itself (the signing
    path), with the same fallback as its decorators: while the storage (Redis) does not
    answer, limits are counted in this process's memory (RATELIMIT_IN_MEMORY_FALLBACK_ENABLED),
    and counting returns to Redis once it answers again."""

    RECHECK_SECONDS = 5.0  # how often a process counting in memory looks whether Redis is back
    _next_recheck = 0.0
    _self_counted: ClassVar[set[Callable[..., Any]]] = set()

    def counts_itself(self, view: Callable[..., _T]) -> Callable[..., _T]:
        """`exempt`, for a view that counts its own limits (`alerts.web.ratelimits`): Flask-Limiter's
        before-request check is skipped for it too (about 0.1 ms of CPU a request)."""
        self._self_counted.add(view)
        return self.exempt(view)

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and flask.current_app.view_functions.get(flask.request.endpoint or "") \
                in self._self_counted:
            return
        super()._check_request_limit(callable_name, in_middleware)

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one request against `item`; False when that breaches it."""
        return self._counted(lambda strategy: strategy.hit(item, *identifiers))

    def hit_all(self, hits: Iterable[tuple[RateLimitItem, str, str]]) -> int | None:
        """Count one request against each (item, prefix, key); the index of the first one breached,
        or None. With the fixed-window strategy in Redis (the default) every count is one pipelined
        round trip, not one each; every limit is counted even when an earlier one is breached."""
        hits = list(hits)

        def count(strategy: RateLimiter) -> int | None:
            storage = strategy.storage
            if isinstance(strategy, FixedWindowRateLimiter) and isinstance(storage, RedisStorage):
                script = storage.lua_incr_expire
                pipe = storage.get_connection().pipeline(transaction=False)  # type: ignore[attr-defined]  # limits types its client by a Protocol without pipelines
                for item, prefix, key in hits:
                    pipe.evalsha(script.sha, 1, storage.prefixed_key(item.key_for(prefix, key)),
                                 item.get_expiry(), 1)
                try:
                    counts = pipe.execute()
                except redis.exceptions.NoScriptError:  # (Redis restarted: the next hits load it)
                    counts = [storage.incr(item.key_for(prefix, key), item.get_expiry())
                              for item, prefix, key in hits]
                return next((i for i, (n, (item, _, _)) in enumerate(zip(counts, hits, strict=True))
                             if int(n) > item.amount), None)
            return next((i for i, (item, prefix, key) in enumerate(hits)
                         if not strategy.hit(item, prefix, key)), None)

        return self._counted(count)

    def reset_at(self, item: RateLimitItem, *identifiers: str) -> float:
        """When `item`'s current window ends (a Unix time), for Retry-After."""
        return self._counted(lambda strategy: strategy.get_window_stats(item, *identifiers).reset_time)

    def _counted(self, count: Callable[[RateLimiter], _T]) -> _T:
        if self._storage_dead and time.monotonic() >= self._next_recheck:
            self._next_recheck = time.monotonic() + self.RECHECK_SECONDS
            if self.storage.check():
                log.info("rate limit storage answers again: counting there")
                self._storage_dead = False
        try:
            return count(self.limiter)
        except Exception:  # what a storage raises is its client's (redis.ConnectionError...)
            if not self._in_memory_fallback_enabled or self._storage_dead:
                raise
            log.warning("rate limit storage unreachable: counting in this process's memory",
                        exc_info=True)
            self._storage_dead = True
            self._next_recheck = time.monotonic() + self.RECHECK_SECONDS
            return count(self.limiter)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])

# What the database raises when it cannot be used at all (down, unreachable, its file gone, no
# connection free in time), as opposed to a statement it refused: pages answer 503, the CLI one
# line naming it.
DATABASE_DOWN = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)


def database_down_reason(exc: BaseException) -> str:
    """The driver's own first line (`Connection refused`, `unable to open database file`)."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return (lines[0] if lines else type(orig).__name__)[:300]


# The dialect's INSERT (it knows ON CONFLICT): what `upsert` returns and `PerDialect` builds with.
DialectInsert = Callable[[Any], postgresql.Insert | sqlite.Insert]
# A column as a statement names it: a model's attribute or a table's column.
Column = sa.ColumnElement[Any] | QueryableAttribute[Any]
_INSERTS: dict[str, DialectInsert] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def upsert(target: Any, bind: sa.Connection | None = None) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT, for the database in use (both dialects spell it alike)."""
    dialect = (bind or db.session.get_bind()).dialect.name
    return _INSERTS[dialect](target)


def any_of(column: Column, values: Iterable[Any],
           bind: sa.Connection | None = None) -> sa.ColumnElement[bool]:
    """`column IN values`, on PostgreSQL as one array parameter (`= ANY(:p)`): a blast batch's
    500 ids as 500 bound parameters cost SQLAlchemy and psycopg more CPU than the query takes
    to run, and a statement whose text changes with the list's length is never reused."""
    values = list(values)
    if (bind or db.session.get_bind()).dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def in_param(column: Column, name: str, dialect: str) -> sa.ColumnElement[bool]:
    """`column IN :name` for a statement built once per database: one array parameter on
    PostgreSQL (one statement text, whatever the length), an expanding list elsewhere."""
    if dialect == "postgresql":
        return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(column.type)))
    return column.in_(sa.bindparam(name, expanding=True))


class PerDialect:
    """An ON CONFLICT statement built once per database, on first use: on the hot paths
    (signup, signing) building and cache-keying an ORM statement per call costs more than
    running it. `build` gets the dialect's insert function."""

    def __init__(self, build: Callable[[DialectInsert], sa.Executable]) -> None:
        self._build = build
        self._built: dict[str, sa.Executable] = {}

    def __call__(self) -> sa.Executable:
        dialect = db.session.get_bind().dialect.name
        statement = self._built.get(dialect)
        if statement is None:
            statement = self._built[dialect] = self._build(_INSERTS[dialect])
        return statement


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    """SQLite as a multi-process store: WAL for readers beside a writer, waits instead of errors."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
