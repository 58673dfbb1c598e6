"""an optional text per language for actions, alerts and the welcome email

Revision ID: i27_translations
Revises: i26_signup_profile
"""
import sqlalchemy as sa
from alembic import op


revision = "i27_translations"
down_revision = "i26_signup_profile"
branch_labels = None
depends_on = None

TABLES = ("actions", "alerts", "email_texts")


def upgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("translations", sa.JSON(), nullable=True))


def downgrade():
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("translations")
