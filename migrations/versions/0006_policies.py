"""Policies: each org's effective policy kept in its row; sessions record MFA and last use

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 15:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # Server defaults let the columns arrive on existing rows (and keep the previous code's
    # inserts working): an empty effective policy reads as every key's default, which is
    # what every org had while baselines could not be set yet.
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effective_policy', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))

    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('mfa')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('effective_policy')
