"""Why a click is a machine's (clicks.machine_reason): a scanner's burst split between two drains is found whole

Revision ID: i14_click_reason
Revises: i11_fill
"""
import sqlalchemy as sa
from alembic import op

revision = "i14_click_reason"
down_revision = "i11_fill"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("clicks") as batch_op:
        batch_op.add_column(sa.Column("machine_reason", sa.String(length=16), nullable=True))


def downgrade():
    with op.batch_alter_table("clicks") as batch_op:
        batch_op.drop_column("machine_reason")
