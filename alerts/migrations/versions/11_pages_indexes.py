"""Staff pages at a million subscribers: indexes for the dashboard's series and the suppression check

Revision ID: i11_pages_indexes
Revises: i11_schedule
"""
from alembic import op

revision = "i11_pages_indexes"
down_revision = "i11_schedule"
branch_labels = None
depends_on = None


def upgrade():
    # The dashboard's per-day series read only the last 30 days of these columns.
    op.create_index("ix_subscribers_confirmed_at", "subscribers", ["confirmed_at"], unique=False)
    op.create_index("ix_subscribers_unsubscribed_at", "subscribers", ["unsubscribed_at"], unique=False)
    # Unsubscribes per day and signups by source, read from the index alone.
    op.create_index("ix_consent_records_at_event_source", "consent_records", ["at", "event", "source"],
                    unique=False)
    # Every recipient count and blast start checks each subscriber's address against this.
    op.create_index("ix_suppressions_email", "suppressions", ["email"], unique=False)


def downgrade():
    op.drop_index("ix_suppressions_email", table_name="suppressions")
    op.drop_index("ix_consent_records_at_event_source", table_name="consent_records")
    op.drop_index("ix_subscribers_unsubscribed_at", table_name="subscribers")
    op.drop_index("ix_subscribers_confirmed_at", table_name="subscribers")
