"""Forward-auth codes: one-time codes that carry a session to an app on its own host
(only their digests; single use, a minute each, bound to the host and the browser's state)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 20:37:30.120832

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('forward_auth_codes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('session_id', sa.String(length=40), nullable=False),
    sa.Column('host', sa.String(length=253), nullable=False),
    sa.Column('state_digest', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_forward_auth_codes_session_id_sessions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forward_auth_codes')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_forward_auth_codes_code_digest'))
    )
    with op.batch_alter_table('forward_auth_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_forward_auth_codes_session_id'), ['session_id'], unique=False)



def downgrade():
    with op.batch_alter_table('forward_auth_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_forward_auth_codes_session_id'))

    op.drop_table('forward_auth_codes')
