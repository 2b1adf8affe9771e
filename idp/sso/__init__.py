"""Upstream federation: an org's email domains (verified by DNS TXT) for home-realm discovery."""
