"""Browser flows: the login page, home-realm discovery, email links, invitation accept, me."""
