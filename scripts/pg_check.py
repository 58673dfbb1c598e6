"""Can the PostgreSQL test run go ahead? Exit 0 if so; else say why on one line, exit 1."""

from __future__ import annotations

import sys

import sqlalchemy as sa
from sqlalchemy.engine import make_url


def main(url: str) -> int:
    """Tell a missing database apart from a server that does not answer."""
    parsed = make_url(url)
    try:
        sa.create_engine(url).connect().close()
    except sa.exc.OperationalError as exc:
        text = " ".join((str(exc.orig) if exc.orig else str(exc)).split())
        if "does not exist" in text and "database" in text:
            print(f"the server at {parsed.host}:{parsed.port or 5432} answers, but has no database "
                  f"named {parsed.database!r}; create it: createdb -h {parsed.host} -U "
                  f"{parsed.username or 'postgres'} {parsed.database}")
        elif "password" in text or "authentication" in text:
            print(f"the server at {parsed.host}:{parsed.port or 5432} refused the login: {text}")
        else:
            print(f"PostgreSQL does not answer at {parsed.host}:{parsed.port or 5432} ({text})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
