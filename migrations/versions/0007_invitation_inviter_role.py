"""Invitations keep the role their inviter acted with, for the policy's check at acceptance

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: invitations already sent (and those the previous code sends while it still
    # runs) have none, and are taken as sent by an admin (idp.orgs.invitations).
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('inviter_role', sa.Enum('member', 'admin', 'owner', name='inviter_role', native_enum=False, create_constraint=True), nullable=True))


def downgrade():
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_column('inviter_role')
