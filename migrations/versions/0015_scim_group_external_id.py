"""A team's externalId is no longer unique in its org (RFC 7643 §3.1: the IdP keeps it
unique, the service provider does not); an index keeps ``externalId eq`` lookups fast

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 16:20:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    # The index first, so lookups by externalId never lose their index in between.
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.create_index('ix_teams_org_id_external_id', ['org_id', 'external_id'], unique=False)
        batch_op.drop_constraint('uq_teams_org_id_external_id', type_='unique')


def downgrade():
    # Fails, changing nothing, while two teams of one org share an externalId: which one
    # keeps it is the IdP's call, not a migration's.
    with op.batch_alter_table('teams', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_teams_org_id_external_id', ['org_id', 'external_id'])
        batch_op.drop_index('ix_teams_org_id_external_id')
