"""The directory an org's IdP provisions (SCIM): provisioned users and groups, role mappings."""
