"""A blast's recipients fixed in chunks (alerts.fill_after, fill_through, recipients_expected); deliveries by (alert, sent_at)

Revision ID: i11_fill
Revises: i11_pages_indexes
"""
import sqlalchemy as sa
from alembic import op

revision = "i11_fill"
down_revision = "i11_pages_indexes"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.add_column(sa.Column("fill_after", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fill_through", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("recipients_expected", sa.Integer(), nullable=True))
    op.create_index("ix_deliveries_alert_sent_at", "deliveries", ["alert_id", "sent_at"], unique=False)


def downgrade():
    op.drop_index("ix_deliveries_alert_sent_at", table_name="deliveries")
    with op.batch_alter_table("alerts") as batch_op:
        batch_op.drop_column("recipients_expected")
        batch_op.drop_column("fill_through")
        batch_op.drop_column("fill_after")
