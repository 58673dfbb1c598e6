"""The Alembic migrations build exactly the schema the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from alerts.extensions import db


@pytest.mark.commits
def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


def test_the_security_migration_keeps_every_row_on_sqlite(app, tmp_path):
    """i9_security rebuilds subscribers and staff_users on SQLite (AUTOINCREMENT): no cascade
    may take consent records or deliveries with them; case variants keep their rows."""
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from alerts import create_app

    other = create_app({**{k: app.config[k] for k in ("SECRET_KEY", "SECRET_KEYS", "REDIS_URL")},
                        "TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}"})
    app.extensions["celery"].set_default()  # the session's worker keeps running the tests' app
    app.extensions["celery"].set_current()
    with other.app_context():
        upgrade(revision="a39a5e9e7a0b")
        now = "2026-11-01 00:00:00.000000+00:00"
        with db.engine.begin() as conn:
            for i, (email, status) in enumerate([("Victim@x.org", "pending"), ("victim@x.org", "confirmed"),
                                                 ("other@x.org", "unsubscribed")], start=1):
                conn.execute(sa.text("INSERT INTO subscribers (id, email, status, created_at) "
                                     "VALUES (:i, :e, :s, :t)"), {"i": i, "e": email, "s": status, "t": now})
                conn.execute(sa.text("INSERT INTO consent_records (subscriber_id, event, at) "
                                     "VALUES (:i, 'signup', :t)"), {"i": i, "t": now})
            conn.execute(sa.text("INSERT INTO alerts (id, subject, preheader, intro_md, state, created_at) "
                                 "VALUES (1, 's', '', '', 'sent', :t)"), {"t": now})
            conn.execute(sa.text("INSERT INTO deliveries (alert_id, subscriber_id, status, attempts) "
                                 "VALUES (1, 3, 'sent', 1)"))
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, email, email_key, token_key FROM subscribers ORDER BY id")).all()
            assert [(r.id, r.email_key) for r in rows] == [(1, None), (2, "victim@x.org"), (3, "other@x.org")]
            assert len({r.token_key for r in rows}) == 3 and all(len(r.token_key) == 32 for r in rows)
            # Emails already sent carry signed ids: those subscribers' old links still unsubscribe.
            assert conn.execute(sa.text("SELECT count(*) FROM subscribers WHERE legacy_links")).scalar() == 3
            assert conn.execute(sa.text("SELECT count(*) FROM consent_records")).scalar() == 3
            assert conn.execute(sa.text("SELECT subscriber_id FROM deliveries")).scalar() == 3
            assert conn.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
            conn.execute(sa.text("DELETE FROM consent_records WHERE subscriber_id = 3"))
            conn.execute(sa.text("DELETE FROM subscribers WHERE id = 3"))
            conn.execute(sa.text("INSERT INTO subscribers (email, email_key, token_key, status, created_at) "
                                 "VALUES ('n@x.org', 'n@x.org', :k, 'pending', :t)"),
                         {"k": "f" * 32, "t": now})
            assert conn.execute(sa.text("SELECT max(id) FROM subscribers")).scalar() == 4  # 3 not reused
        db.engine.dispose()
