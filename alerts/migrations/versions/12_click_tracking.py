"""click tracking: an alert's frozen links, per-link counters, drained batches

Revision ID: i12_click_tracking
Revises: i0_signatures_clicks
"""
from alembic import op
import sqlalchemy as sa


revision = "i12_click_tracking"
down_revision = "i9_security"
branch_labels = None
depends_on = None

COUNTERS = ("clicks", "unique_clicks", "machine_clicks", "clicks_hour", "unique_hour",
            "clicks_day", "unique_day", "clicks_week", "unique_week")


def upgrade():
    op.create_table(
        "alert_links",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("link_index", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["actions.id"], name=op.f("fk_alert_links_action_id_actions"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_alert_links_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "link_index", name=op.f("pk_alert_links")),
    )
    op.create_table(
        "click_counts",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("link_index", sa.Integer(), autoincrement=False, nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in COUNTERS),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], name=op.f("fk_click_counts_alert_id_alerts"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "link_index", name=op.f("pk_click_counts")),
    )
    op.create_table(
        "click_batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_click_batches")),
    )
    with op.batch_alter_table("click_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_click_batches_recorded_at"), ["recorded_at"], unique=False)
    # The report reads an alert's clicks per delivery; erasure and "engaged recently" read by subscriber.
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.create_index("ix_clicks_delivery_id", ["delivery_id"], unique=False)


def downgrade():
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_delivery_id")
    with op.batch_alter_table("click_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_click_batches_recorded_at"))
    op.drop_table("click_batches")
    op.drop_table("click_counts")
    op.drop_table("alert_links")
