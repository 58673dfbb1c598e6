"""subscribers' phone numbers and the custom fields staff define

Revision ID: i26_people_fields
Revises: i25_staff_trust
"""
import sqlalchemy as sa
from alembic import op


revision = "i26_people_fields"
down_revision = "i25_staff_trust"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("phone", sa.String(20), nullable=True))
    op.create_table(
        "subscriber_fields",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("choices", sa.JSON(), nullable=True),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("on_signup", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name=op.f("uq_subscriber_fields_key")),
    )
    op.create_table(
        "subscriber_field_values",
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("field_id", sa.Integer(), sa.ForeignKey("subscriber_fields.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("value", sa.String(500), primary_key=True),
    )
    op.create_index("ix_subscriber_field_values_field_value", "subscriber_field_values",
                    ["field_id", "value"])


def downgrade():
    op.drop_index("ix_subscriber_field_values_field_value", "subscriber_field_values")
    op.drop_table("subscriber_field_values")
    op.drop_table("subscriber_fields")
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("phone")
