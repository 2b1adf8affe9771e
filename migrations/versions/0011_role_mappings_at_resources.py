"""Role mappings at a resource: IdP group X gives role R on a tenant or project; the grants
they give sit beside hand-made ones

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 11:40:27.884493

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('role_mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('resource_role_id', sa.String(length=40), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_role_mappings_org_id_group_key'), type_='unique')
        batch_op.create_index('uq_role_mappings_org_id_group_key', ['org_id', 'group_key'], unique=True, sqlite_where=sa.text('resource_id IS NULL'), postgresql_where=sa.text('resource_id IS NULL'))
        batch_op.create_index(batch_op.f('ix_role_mappings_resource_id'), ['resource_id'], unique=False)
        batch_op.create_unique_constraint('uq_role_mappings_resource', ['org_id', 'group_key', 'resource_id'])
        batch_op.create_foreign_key(batch_op.f('fk_role_mappings_resource_role_id_resource_roles'), 'resource_roles', ['resource_role_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_role_mappings_resource_id_resources'), 'resources', ['resource_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('resource_grants', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mapping_id', sa.String(length=40), nullable=True))
        batch_op.drop_constraint(batch_op.f('uq_resource_grants_member'), type_='unique')
        batch_op.create_index('uq_resource_grants_member', ['resource_id', 'membership_id'], unique=True, sqlite_where=sa.text('mapping_id IS NULL'), postgresql_where=sa.text('mapping_id IS NULL'))
        batch_op.create_unique_constraint('uq_resource_grants_mapping', ['mapping_id', 'membership_id'])
        batch_op.create_foreign_key(batch_op.f('fk_resource_grants_mapping_id_role_mappings'), 'role_mappings', ['mapping_id'], ['id'], ondelete='CASCADE')


def downgrade():
    # Mappings at resources, and the grants they gave, have no place in the older schema.
    op.execute("DELETE FROM resource_grants WHERE mapping_id IS NOT NULL")
    op.execute("DELETE FROM role_mappings WHERE resource_id IS NOT NULL")
    with op.batch_alter_table('role_mappings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_role_mappings_resource_id_resources'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_role_mappings_resource_role_id_resource_roles'), type_='foreignkey')
        batch_op.drop_constraint('uq_role_mappings_resource', type_='unique')
        batch_op.drop_index(batch_op.f('ix_role_mappings_resource_id'))
        batch_op.drop_index('uq_role_mappings_org_id_group_key', sqlite_where=sa.text('resource_id IS NULL'), postgresql_where=sa.text('resource_id IS NULL'))
        batch_op.create_unique_constraint(batch_op.f('uq_role_mappings_org_id_group_key'), ['org_id', 'group_key'])
        batch_op.drop_column('resource_role_id')
        batch_op.drop_column('resource_id')

    with op.batch_alter_table('resource_grants', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_resource_grants_mapping_id_role_mappings'), type_='foreignkey')
        batch_op.drop_constraint('uq_resource_grants_mapping', type_='unique')
        batch_op.drop_index('uq_resource_grants_member', sqlite_where=sa.text('mapping_id IS NULL'), postgresql_where=sa.text('mapping_id IS NULL'))
        batch_op.create_unique_constraint(batch_op.f('uq_resource_grants_member'), ['resource_id', 'membership_id'])
        batch_op.drop_column('mapping_id')

