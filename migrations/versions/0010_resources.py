"""Scopes below the org: resource types and their roles, the org's resources, and the roles
members and teams hold on them, teams' own API keys, whether an org nests teams, invitations to a resource

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('resource_types',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('parent_id', sa.String(length=40), nullable=True),
    sa.Column('invite_outsiders', sa.Boolean(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['resource_types.id'], name=op.f('fk_resource_types_parent_id_resource_types')),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_resource_types_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_types')),
    sa.UniqueConstraint('workspace_id', 'key', name='uq_resource_types_key')
    )
    op.create_table('resource_roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('type_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['type_id'], ['resource_types.id'], name=op.f('fk_resource_roles_type_id_resource_types'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_roles')),
    sa.UniqueConstraint('type_id', 'key', name='uq_resource_roles_key')
    )
    op.create_table('resources',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('type_id', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('parent_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_resources_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['parent_id'], ['resources.id'], name=op.f('fk_resources_parent_id_resources')),
    sa.ForeignKeyConstraint(['type_id'], ['resource_types.id'], name=op.f('fk_resources_type_id_resource_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resources')),
    sa.UniqueConstraint('org_id', 'type_id', 'external_id', name='uq_resources_external_id')
    )
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.create_index('ix_resources_org_id_type_id_id', ['org_id', 'type_id', 'id'], unique=False)
        batch_op.create_index('ix_resources_parent_id', ['parent_id'], unique=False)

    op.create_table('resource_grants',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=False),
    sa.Column('resource_id', sa.String(length=40), nullable=False),
    sa.Column('type_id', sa.String(length=40), nullable=False),
    sa.Column('membership_id', sa.String(length=40), nullable=True),
    sa.Column('team_id', sa.String(length=40), nullable=True),
    sa.Column('role_id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(membership_id IS NULL) <> (team_id IS NULL)', name=op.f('ck_resource_grants_one_principal')),
    sa.ForeignKeyConstraint(['membership_id'], ['memberships.id'], name=op.f('fk_resource_grants_membership_id_memberships'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_resource_grants_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resource_id'], ['resources.id'], name=op.f('fk_resource_grants_resource_id_resources'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['role_id'], ['resource_roles.id'], name=op.f('fk_resource_grants_role_id_resource_roles')),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_resource_grants_team_id_teams'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['type_id'], ['resource_types.id'], name=op.f('fk_resource_grants_type_id_resource_types')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_resource_grants')),
    sa.UniqueConstraint('resource_id', 'membership_id', name='uq_resource_grants_member'),
    sa.UniqueConstraint('resource_id', 'team_id', name='uq_resource_grants_team')
    )
    with op.batch_alter_table('resource_grants', schema=None) as batch_op:
        batch_op.create_index('ix_resource_grants_member_type', ['membership_id', 'type_id', 'resource_id'], unique=False)
        batch_op.create_index('ix_resource_grants_team_type', ['team_id', 'type_id', 'resource_id'], unique=False)

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('team_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_keys_team_id'), ['team_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_api_keys_team_id_teams'), 'teams', ['team_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resource_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('resource_role_id', sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_invitations_resource_role_id_resource_roles'), 'resource_roles', ['resource_role_id'], ['id'])
        batch_op.create_foreign_key(batch_op.f('fk_invitations_resource_id_resources'), 'resources', ['resource_id'], ['id'], ondelete='CASCADE')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nested_teams', sa.Boolean(), server_default='1', nullable=False))



def downgrade():
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('nested_teams')

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_invitations_resource_id_resources'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_invitations_resource_role_id_resource_roles'), type_='foreignkey')
        batch_op.drop_column('resource_role_id')
        batch_op.drop_column('resource_id')

    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_api_keys_team_id_teams'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_api_keys_team_id'))
        batch_op.drop_column('team_id')

    with op.batch_alter_table('resource_grants', schema=None) as batch_op:
        batch_op.drop_index('ix_resource_grants_team_type')
        batch_op.drop_index('ix_resource_grants_member_type')

    op.drop_table('resource_grants')
    with op.batch_alter_table('resources', schema=None) as batch_op:
        batch_op.drop_index('ix_resources_parent_id')
        batch_op.drop_index('ix_resources_org_id_type_id_id')

    op.drop_table('resources')
    op.drop_table('resource_roles')
    op.drop_table('resource_types')
