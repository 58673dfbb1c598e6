"""API tokens, the record of API writes, and a subscriber's name, postal code and language

Revision ID: i24_api
Revises: i24_source_codes
"""
import sqlalchemy as sa
from alembic import op

revision = "i24_api"
down_revision = "i24_source_codes"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_tokens_key_id")),
    )
    op.create_table(
        "api_writes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("object_kind", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.ForeignKeyConstraint(["token_id"], ["api_tokens.id"], ondelete="CASCADE",
                                name=op.f("fk_api_writes_token_id_api_tokens")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_writes")),
    )
    op.create_index(op.f("ix_api_writes_token_id"), "api_writes", ["token_id"])
    with op.batch_alter_table("subscribers") as batch_op:
        batch_op.add_column(sa.Column("first_name", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("last_name", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("postal_code", sa.String(20), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(16), nullable=True))
    op.create_index("ix_subscribers_source_id", "subscribers", ["source", "id"])


def downgrade():
    op.drop_index("ix_subscribers_source_id", table_name="subscribers")
    with op.batch_alter_table("subscribers") as batch_op:
        for name in ("language", "postal_code", "last_name", "first_name"):
            batch_op.drop_column(name)
    op.drop_index(op.f("ix_api_writes_token_id"), table_name="api_writes")
    op.drop_table("api_writes")
    op.drop_table("api_tokens")
