"""Workspace baseline policies that organizations inherit and may only make stricter."""
