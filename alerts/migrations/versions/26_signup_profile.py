"""what a signup form asked for, carried with the signup and kept pending for a known address

Revision ID: i26_signup_profile
Revises: i26_people_fields
"""
import sqlalchemy as sa
from alembic import op


revision = "i26_signup_profile"
down_revision = "i26_people_fields"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("signup_attempts") as batch:
        batch.add_column(sa.Column("profile", sa.JSON(), nullable=True))
    with op.batch_alter_table("subscribers") as batch:
        batch.add_column(sa.Column("pending_profile", sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table("subscribers") as batch:
        batch.drop_column("pending_profile")
    with op.batch_alter_table("signup_attempts") as batch:
        batch.drop_column("profile")
