"""security: case-folded subscriber key, per-subscriber token key, staff session epoch,
signup attempts, ids never reused on SQLite

Revision ID: i9_security
Revises: a39a5e9e7a0b

Case variants already on the list (`Victim@x.org` and `victim@x.org` as two rows) keep
their rows; the one to keep the key is the confirmed one, else the oldest, and the others
get a NULL key (they stay as they are, and no new row can be made for that address).
On SQLite, `subscribers` and `staff_users` are rebuilt with AUTOINCREMENT (env.py turns
foreign keys off for the run, so the rebuild cascades nothing).
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = "i9_security"
down_revision = 'i0_signatures_clicks'
branch_labels = None
depends_on = None


def upgrade():
    conn = op.get_bind()
    sqlite = conn.dialect.name == "sqlite"
    table_kwargs = {"sqlite_autoincrement": True} if sqlite else {}
    recreate = "always" if sqlite else "auto"

    with op.batch_alter_table("subscribers", recreate=recreate, table_kwargs=table_kwargs) as batch_op:
        batch_op.add_column(sa.Column("email_key", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("token_key", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("legacy_links", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.drop_constraint("uq_subscribers_email", type_="unique")

    subscribers = sa.table("subscribers", sa.column("id", sa.Integer), sa.column("email", sa.String),
                           sa.column("status", sa.String), sa.column("email_key", sa.String),
                           sa.column("token_key", sa.String), sa.column("legacy_links", sa.Boolean))
    rows = conn.execute(sa.select(subscribers.c.id, subscribers.c.email, subscribers.c.status)
                        .order_by(subscribers.c.id)).all()
    keeper: dict[str, tuple] = {}
    for row in rows:
        key = row.email.strip().lower()
        best = keeper.get(key)
        if best is None or (row.status == "confirmed" and best.status != "confirmed"):
            keeper[key] = row
    keep_ids = {row.id: key for key, row in keeper.items()}
    for row in rows:
        conn.execute(subscribers.update().where(subscribers.c.id == row.id)
                     .values(email_key=keep_ids.get(row.id), token_key=secrets.token_hex(16),
                             legacy_links=True))

    with op.batch_alter_table("subscribers", recreate=recreate, table_kwargs=table_kwargs) as batch_op:
        batch_op.alter_column("token_key", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_unique_constraint(batch_op.f("uq_subscribers_email_key"), ["email_key"])
        batch_op.create_unique_constraint(batch_op.f("uq_subscribers_token_key"), ["token_key"])

    with op.batch_alter_table("staff_users", recreate=recreate, table_kwargs=table_kwargs) as batch_op:
        batch_op.add_column(sa.Column("session_epoch", sa.Integer(), server_default="0", nullable=False))

    op.create_table(
        "signup_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signup_attempts")),
    )
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signup_attempts_at"), ["at"], unique=False)


def downgrade():
    with op.batch_alter_table("signup_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signup_attempts_at"))
    op.drop_table("signup_attempts")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_column("session_epoch")
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.drop_constraint("uq_subscribers_token_key", type_="unique")
        batch_op.drop_constraint("uq_subscribers_email_key", type_="unique")
        batch_op.drop_column("token_key")
        batch_op.drop_column("legacy_links")
        batch_op.drop_column("email_key")
        batch_op.create_unique_constraint("uq_subscribers_email", ["email"])
