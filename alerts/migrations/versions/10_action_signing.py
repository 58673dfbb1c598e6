"""actions become signable: text, target, goal, pledge, comment and confirmation settings

Revision ID: i10_action_signing
Revises: i0_signatures_clicks
Create Date: 2026-11-26 07:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'i10_action_signing'
down_revision = "i13_audiences"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('body', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('target', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('pledge_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('goal', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('allow_comments', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('requires_confirmation', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        # Counting an action's signatures (the live count, the goal) reads only this index.
        batch_op.create_index('ix_signatures_action_confirmed', ['action_id', 'confirmed_at'], unique=False)


def downgrade():
    with op.batch_alter_table('signatures', schema=None) as batch_op:
        batch_op.drop_index('ix_signatures_action_confirmed')
    with op.batch_alter_table('actions', schema=None) as batch_op:
        batch_op.drop_column('requires_confirmation')
        batch_op.drop_column('allow_comments')
        batch_op.drop_column('goal')
        batch_op.drop_column('pledge_text')
        batch_op.drop_column('target')
        batch_op.drop_column('body')
