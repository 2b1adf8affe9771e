"""Roles as data: custom roles (workspace templates and an org's own), the app's own
permissions, role columns holding any role key, and a version of the workspace's roles

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:30:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# (table, column, the CHECK constraint that held it to the three built-in roles)
ROLE_COLUMNS = [
    ('memberships', 'role', 'ck_memberships_role', False),
    ('memberships', 'assigned_role', 'ck_memberships_assigned_role', True),
    ('invitations', 'role', 'ck_invitations_invitation_role', False),
    ('invitations', 'inviter_role', 'ck_invitations_inviter_role', True),
    ('role_mappings', 'role', 'ck_role_mappings_mapped_role', False),
    ('api_keys', 'role', 'ck_api_keys_api_key_role', True),
]


def upgrade():
    op.create_table('app_permissions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=127), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('granted_from', sa.Enum('member', 'admin', 'owner', name='app_permission_granted_from', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_app_permissions_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_app_permissions')),
    sa.UniqueConstraint('workspace_id', 'key', name='uq_app_permissions_key')
    )
    op.create_table('custom_roles',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('workspace_id', sa.String(length=40), nullable=False),
    sa.Column('org_id', sa.String(length=40), nullable=True),
    sa.Column('scope', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('permissions', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organizations.id'], name=op.f('fk_custom_roles_org_id_organizations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_custom_roles_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_custom_roles')),
    sa.UniqueConstraint('workspace_id', 'scope', 'key', name='uq_custom_roles_scope_key')
    )
    with op.batch_alter_table('custom_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_custom_roles_org_id'), ['org_id'], unique=False)

    # A role column now holds any role key (built-in or custom): the built-ins' CHECK goes,
    # the column widens. Existing values ('owner', 'admin', 'member') stay as they are.
    for table, column, check, nullable in ROLE_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(check), type_='check')
            batch_op.alter_column(column, existing_type=sa.VARCHAR(length=6),
                                  type_=sa.String(length=64), existing_nullable=nullable)

    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('roles_version', sa.Integer(), server_default='0', nullable=False))


def downgrade():
    # Members holding a custom role go back to the built-in role below it.
    for table, column, _check, _nullable in ROLE_COLUMNS:
        op.execute(
            f"UPDATE {table} SET {column} = 'member' "
            f"WHERE {column} IS NOT NULL AND {column} NOT IN ('owner', 'admin', 'member')"
        )
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('roles_version')
    for table, column, check, nullable in ROLE_COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(column, existing_type=sa.String(length=64),
                                  type_=sa.VARCHAR(length=6), existing_nullable=nullable)
            batch_op.create_check_constraint(op.f(check), sa.column(column).in_(['member', 'admin', 'owner']))
    with op.batch_alter_table('custom_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_custom_roles_org_id'))
    op.drop_table('custom_roles')
    op.drop_table('app_permissions')
