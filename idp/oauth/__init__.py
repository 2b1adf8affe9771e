"""Gatehouse as an OpenID Connect provider (Authlib): models, grants, keys, views."""
