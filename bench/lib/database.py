"""The bench's database: refused unless meant for it, held while the bench runs, built fresh."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from bench.lib import BenchError


def check_database_url(url: str, force: bool) -> None:
    """The bench drops every table: refuse databases it was not meant for."""
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return
    name = parts.path.lstrip("/")
    if "bench" not in name and not force:
        raise BenchError(
            f"--database-url names database {name!r}; the bench drops all its tables, so it only "
            "uses a database whose name contains 'bench' (or pass --force-drop)"
        )


def bench_database_url(args, workdir: Path, filename: str = "bench.db") -> str:
    """`--database-url` once `check_database_url` allows it, else a new SQLite file in `workdir`."""
    if args.database_url:
        check_database_url(args.database_url, args.force_drop)
        return args.database_url
    return f"sqlite:///{workdir / filename}"


# A bench's hold on its database, kept until its process ends (by URL).
_CLAIMS: dict[str, object] = {}


_BENCH_LOCK_KEY = 0x616C657274730B  # pg_advisory_lock's key: "alerts" and 11, the issue


def claim_database(url: str):
    """Hold the database for this bench until its process ends, or fail at once naming it.

    Two benches on one database break each other: the second drops the tables under the
    first one's workers, whose blast then never finishes while it waits for its sink. On
    PostgreSQL the hold is a session advisory lock on a connection of its own; on SQLite,
    an exclusive lock on a file beside the database's. Returns that connection or file."""
    import fcntl

    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    parts = sa.make_url(url)
    if parts.get_backend_name() == "sqlite":
        if parts.database in (None, "", ":memory:"):
            return None  # a database in memory is this process's alone
        path = Path(parts.database).resolve()
        holder = open(f"{path}.bench-lock", "a")  # noqa: SIM115 - held open until the process ends
        try:
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder.close()
            raise BenchError(f"another bench is using {path} (it holds {holder.name}); "
                             "wait for it to end or give this one another database") from None
        return holder
    conn = sa.create_engine(url, poolclass=NullPool).connect()
    if not conn.scalar(sa.select(sa.func.pg_try_advisory_lock(_BENCH_LOCK_KEY))):
        conn.close()
        raise BenchError(f"another bench is using database {parts.database!r} on "
                         f"{parts.host} (it holds the bench's advisory lock); wait for it "
                         "to end or give this one another database")
    conn.commit()  # the lock is the session's: no transaction needs to stay open
    return conn


def fresh_schema(app) -> None:
    """`alerts.testing.schema.fresh_schema` on `app`'s database, once the bench holds it."""
    from alerts.extensions import db
    from alerts.testing import schema

    with app.app_context():
        url = db.engine.url.render_as_string(hide_password=False)
        if url not in _CLAIMS:
            _CLAIMS[url] = claim_database(url)
        schema.fresh_schema()
        db.session.remove()
        db.engine.dispose()


def database_label(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme.startswith("sqlite"):
        return "SQLite"
    if parts.scheme.startswith("postgresql"):
        return "PostgreSQL"
    return parts.scheme
