"""signatures.source_code: the `?source=` code a signature came through (reports, exports, audiences)

Revision ID: i24_source_codes
Revises: i22_signature_unqueued
"""
import sqlalchemy as sa
from alembic import op

revision = "i24_source_codes"
down_revision = "i22_signature_unqueued"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("signatures") as batch_op:
        batch_op.add_column(sa.Column("source_code", sa.String(64), nullable=True))
    op.create_index("ix_signatures_source_code", "signatures", ["source_code"])


def downgrade():
    op.drop_index("ix_signatures_source_code", table_name="signatures")
    with op.batch_alter_table("signatures") as batch_op:
        batch_op.drop_column("source_code")
