"""Row-level security on PostgreSQL: every org-scoped table admits only the rows of the org
the transaction declared (``gatehouse.org_id``; ``*`` for workspace-wide work)

A second wall behind the service layer's ``org_id`` filters. FORCE binds the tables' owner
too (the app's role may own them); superusers and BYPASSRLS roles are never bound, so the
app must not connect as one (README, "Row-level security"). SQLite has no row-level
security: nothing is done there.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:20:00.000000

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

SETTING = "current_setting('gatehouse.org_id', true)"
WIDE = f"{SETTING} = '*'"
OWN = f"org_id::text = {SETTING}"

# Tables with their own org_id (NOT NULL): the org's rows only.
ORG_TABLES = (
    "memberships",
    "teams",
    "invitations",
    "role_mappings",
    "domains",
    "connections",
    "resources",
    "resource_grants",
    "directory_users",
    "directory_groups",
    "scim_tokens",
    "setup_links",
    "oauth_authorization_codes",
    "oauth_tokens",
)
# org_id NULL is a workspace row: api keys of the workspace and workspace audit events are
# workspace-wide only; a role template (custom_roles without org) is offered to every org.
NULLABLE_ORG_TABLES = {
    "api_keys": f"{OWN} OR {WIDE}",
    "audit_events": f"{OWN} OR {WIDE}",
    "custom_roles": f"org_id IS NULL OR {OWN} OR {WIDE}",
}
# Tables that belong to one org through a parent: a row is visible when its parent is
# (the parent's own policy applies inside the sub-select).
CHILD_TABLES = {
    "team_members": "EXISTS (SELECT 1 FROM teams WHERE teams.id = team_members.team_id)",
    "external_identities": (
        "EXISTS (SELECT 1 FROM connections WHERE connections.id = external_identities.connection_id)"
    ),
    "connection_tests": (
        "EXISTS (SELECT 1 FROM connections WHERE connections.id = connection_tests.connection_id)"
    ),
    "login_states": (
        "EXISTS (SELECT 1 FROM connections WHERE connections.id = login_states.connection_id)"
    ),
    "seen_assertions": (
        "EXISTS (SELECT 1 FROM connections WHERE connections.id = seen_assertions.connection_id)"
    ),
}


def _policies():
    for table in ORG_TABLES:
        yield table, f"{OWN} OR {WIDE}"
    yield from NULLABLE_ORG_TABLES.items()
    yield from CHILD_TABLES.items()


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, condition in _policies():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_declared_org ON {table}"
            f" USING ({condition}) WITH CHECK ({condition})"
        )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, _condition in _policies():
        op.execute(f"DROP POLICY IF EXISTS {table}_declared_org ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
