"""journeys: triggers, steps (each with its own standing alert) and members

Revision ID: i29_journeys
Revises: i28_more_actions
"""
import sqlalchemy as sa
from alembic import op

revision = "i29_journeys"
down_revision = "i28_more_actions"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "journeys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False, unique=True),
        sa.Column("trigger", sa.String(140), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=True),
    )
    op.create_index("ix_journeys_trigger", "journeys", ["trigger"])
    op.create_table(
        "journey_steps",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey_id", sa.Integer(), sa.ForeignKey("journeys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("after_minutes", sa.Integer(), nullable=False),
        sa.Column("unless_signed_action_id", sa.Integer(), sa.ForeignKey("actions.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("only_if_not_clicked_previous", sa.Boolean(), nullable=False),
        sa.Column("is_welcome", sa.Boolean(), nullable=False),
        sa.Column("removed", sa.Boolean(), nullable=False),
        sa.Column("alert_id", sa.Integer(), sa.ForeignKey("alerts.id", ondelete="SET NULL"), nullable=True),
        sa.UniqueConstraint("journey_id", "position"),
    )
    op.create_table(
        "journey_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("journey_id", sa.Integer(), sa.ForeignKey("journeys.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_position", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exited_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_reason", sa.String(32), nullable=True),
        sa.UniqueConstraint("journey_id", "subscriber_id"),
    )
    op.create_index("ix_journey_members_subscriber_id", "journey_members", ["subscriber_id"])
    op.create_index("ix_journey_members_due", "journey_members", ["due_at"],
                    postgresql_where=sa.text("exited_at IS NULL"), sqlite_where=sa.text("exited_at IS NULL"))


def downgrade():
    op.drop_index("ix_journey_members_due", table_name="journey_members")
    op.drop_index("ix_journey_members_subscriber_id", table_name="journey_members")
    op.drop_table("journey_members")
    op.drop_table("journey_steps")
    op.drop_index("ix_journeys_trigger", table_name="journeys")
    op.drop_table("journeys")
