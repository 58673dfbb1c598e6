"""Scheduled sends: alerts.scheduled_for; the subscriber list's order as an index

Revision ID: i11_schedule
Revises: i10_action_signing
"""
import sqlalchemy as sa
from alembic import op

revision = "i11_schedule"
down_revision = "i10_action_signing"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_alerts_scheduled_for", ["scheduled_for"], unique=False)
    op.create_index("ix_subscribers_created_at_id", "subscribers", ["created_at", "id"], unique=False)


def downgrade():
    op.drop_index("ix_subscribers_created_at_id", table_name="subscribers")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_index("ix_alerts_scheduled_for")
        batch_op.drop_column("scheduled_for")
