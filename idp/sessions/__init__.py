"""Browser sessions: server-side, revocable, bound to how and where the person signed in."""
