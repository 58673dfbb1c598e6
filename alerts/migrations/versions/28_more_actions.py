"""letters and calls to decision-makers, and share images

Revision ID: i28_more_actions
Revises: i27_translations
"""
import sqlalchemy as sa
from alembic import op

revision = "i28_more_actions"
down_revision = "i27_translations"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("letter_subject", sa.String(200), nullable=True))
        batch.add_column(sa.Column("letter_text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("call_script", sa.Text(), nullable=True))
    op.create_table(
        "action_targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("action_id", sa.Integer(), sa.ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("placeholder", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_action_targets_action_id", "action_targets", ["action_id"])
    op.create_table(
        "action_images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("action_id", sa.Integer(), sa.ForeignKey("actions.id", ondelete="CASCADE"), nullable=False,
                  unique=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("alt", sa.String(300), nullable=False, server_default=""),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "letter_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("signature_id", sa.Integer(), sa.ForeignKey("signatures.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey("action_targets.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("message_id", sa.String(255), nullable=True),
        sa.Column("smtp_reply", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("signature_id", "target_id"),
    )
    op.create_index("ix_letter_deliveries_waiting", "letter_deliveries", ["status", "due_at"])
    op.create_index("ix_letter_deliveries_target", "letter_deliveries", ["target_id", "status"])
    op.create_index("ix_letter_deliveries_message_id", "letter_deliveries", ["message_id"])
    op.create_table(
        "call_logs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("action_id", sa.Integer(), sa.ForeignKey("actions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target_id", sa.Integer(), sa.ForeignKey("action_targets.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("signature_id", sa.Integer(), sa.ForeignKey("signatures.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_call_logs_action_id", "call_logs", ["action_id"])
    op.create_index("ix_call_logs_signature_id", "call_logs", ["signature_id"])
    op.create_index("ix_call_logs_created_at", "call_logs", ["created_at"])
    op.create_index("ix_call_logs_target_outcome", "call_logs", ["target_id", "outcome"])


def downgrade():
    op.drop_table("call_logs")
    op.drop_table("letter_deliveries")
    op.drop_table("action_images")
    op.drop_index("ix_action_targets_action_id", "action_targets")
    op.drop_table("action_targets")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("call_script")
        batch.drop_column("letter_text")
        batch.drop_column("letter_subject")
