"""Users: one identity per person in the workspace's pool."""
