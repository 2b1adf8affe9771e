"""The append-only audit log, one event per change."""
