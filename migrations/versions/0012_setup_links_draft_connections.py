"""Setup links for a customer's IT admin, draft connections (the SP's values before the IdP's),
test sign-ins, the last refused SCIM request of each token, and apps' initiate_login_uri

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 13:02:38.989596

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('setup_links',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('intents', sa.JSON(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('hint', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_setup_links_org_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_setup_links')),
    sa.UniqueConstraint('token_digest', name=op.f('uq_setup_links_token_digest'))
    )
    with op.batch_alter_table('setup_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_setup_links_org_id'), ['org_id'], unique=False)

    op.create_table('connection_tests',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('connection_id', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('started_by', sa.String(length=200), nullable=False),
    sa.Column('return_to', sa.String(length=500), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('checks', sa.JSON(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['connection_id'], ['connections.id'], name=op.f('fk_connection_tests_connection_id_connections'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_connection_tests')),
    sa.UniqueConstraint('request_id', name=op.f('uq_connection_tests_request_id'))
    )
    with op.batch_alter_table('connection_tests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_connection_tests_connection_id'), ['connection_id'], unique=False)

    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.add_column(sa.Column('draft', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('initiate_login_uri', sa.String(length=2000), nullable=True))

    with op.batch_alter_table('scim_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_error', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True))



def downgrade():
    with op.batch_alter_table('scim_tokens', schema=None) as batch_op:
        batch_op.drop_column('last_error_at')
        batch_op.drop_column('last_error')

    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.drop_column('initiate_login_uri')

    with op.batch_alter_table('connections', schema=None) as batch_op:
        batch_op.drop_column('draft')

    with op.batch_alter_table('connection_tests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_connection_tests_connection_id'))

    op.drop_table('connection_tests')
    with op.batch_alter_table('setup_links', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_setup_links_org_id'))

    op.drop_table('setup_links')
