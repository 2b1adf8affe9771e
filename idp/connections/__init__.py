"""An org's upstream identity: IdP connections, email domains, the subjects IdPs sign in."""
