"""signatures.confirmation_unqueued: a confirmation the broker refused, for the sweep to queue

Revision ID: i22_signature_unqueued
Revises: i14_click_reason
"""
import sqlalchemy as sa
from alembic import op

revision = "i22_signature_unqueued"
down_revision = "i14_click_reason"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("signatures") as batch_op:
        batch_op.add_column(sa.Column("confirmation_unqueued", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_index("ix_signatures_confirmation_unqueued", "signatures", ["id"],
                    postgresql_where=sa.text("confirmation_unqueued"),
                    sqlite_where=sa.text("confirmation_unqueued"))


def downgrade():
    op.drop_index("ix_signatures_confirmation_unqueued", table_name="signatures")
    with op.batch_alter_table("signatures") as batch_op:
        batch_op.drop_column("confirmation_unqueued")
