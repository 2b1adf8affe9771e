"""Machine credentials: API keys (and, later, SCIM tokens and OAuth clients)."""
