"""An empty database with production's schema, for a test session or a benchmark run."""

from __future__ import annotations

import sqlalchemy as sa
from flask_migrate import upgrade

from alerts.extensions import db


def fresh_schema() -> None:
    """Drop everything, then build the schema the way production does: by migrations.

    Runs in the current app context, on that app's database."""
    meta = sa.MetaData()
    meta.reflect(db.engine)
    meta.drop_all(db.engine)
    with db.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    upgrade()
