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


# Every key's default as this revision defines them: what each existing org had while
# baselines and overrides could not be set yet (both columns were always empty), with the
# org's own member_cap.
DEFAULTS = {
    'sso_required': False,
    'mfa_required': False,
    'session_max_age': None,
    'session_idle_timeout': None,
    'allowed_email_domains': None,
    'idp_initiated_login': True,
    'jit_provisioning': True,
    'external_invites': True,
    'invite_links': True,
    'invite_link_max_age': 90 * 86400,
    'member_cap': 1_000_000,
    'min_role_to_invite': 'admin',
}


def upgrade():
    # The server default keeps an older release's inserts working during an upgrade: an
    # empty effective policy is "not computed yet", and the code computes it from the chain.
    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effective_policy', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))

    orgs = sa.table('organizations', sa.column('id', sa.String), sa.column('member_cap', sa.Integer), sa.column('effective_policy', sa.JSON))
    bind = op.get_bind()
    for org_id, member_cap in bind.execute(sa.select(orgs.c.id, orgs.c.member_cap)).all():
        policy = {**DEFAULTS, 'member_cap': min(member_cap, DEFAULTS['member_cap'])}
        bind.execute(orgs.update().where(orgs.c.id == org_id).values(effective_policy=policy))

    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('mfa')

    with op.batch_alter_table('organizations', schema=None) as batch_op:
        batch_op.drop_column('effective_policy')
