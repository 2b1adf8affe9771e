"""One membership per address in an org, what each org shows of a person, invitations that
prove the address, email links for addresses and pending SSO sign-ins

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 06:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('email_key', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('name', sa.String(length=200), nullable=True))
    # What each org showed until now came from the shared person: copy it, so nothing an org
    # sees changes. An earlier release could give one address several memberships of an org:
    # the oldest keeps the key, the others keep theirs null until `gatehouse people merge`
    # (`gatehouse people duplicates` lists them), so the new unique key holds at once.
    op.execute(
        """
        UPDATE memberships SET
            email = (SELECT users.email FROM users WHERE users.id = memberships.user_id),
            name = (SELECT users.name FROM users WHERE users.id = memberships.user_id)
        """
    )
    op.execute(
        """
        UPDATE memberships SET email_key = lower(trim(email))
        WHERE email IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM memberships AS older
            WHERE older.org_id = memberships.org_id
              AND lower(trim(older.email)) = lower(trim(memberships.email))
              AND (older.created_at < memberships.created_at
                   OR (older.created_at = memberships.created_at AND older.id < memberships.id))
        )
        """
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_unique_constraint(batch_op.f('uq_memberships_org_id_email_key'), ['org_id', 'email_key'])

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('proof_digest', sa.String(length=64), nullable=True))

    with op.batch_alter_table('email_links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('pending_sign_in', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('browser_digest', sa.String(length=64), nullable=True))
        batch_op.alter_column('user_id', existing_type=sa.String(length=40), nullable=True)


def downgrade():
    with op.batch_alter_table('email_links', schema=None) as batch_op:
        batch_op.alter_column('user_id', existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column('browser_digest')
        batch_op.drop_column('pending_sign_in')
        batch_op.drop_column('email')

    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_column('proof_digest')

    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_memberships_org_id_email_key'), type_='unique')
        batch_op.drop_column('name')
        batch_op.drop_column('email_key')
        batch_op.drop_column('email')
