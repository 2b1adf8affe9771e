"""Organizations (tenants), memberships, roles, teams and invitations."""
