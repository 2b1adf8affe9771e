"""Finding and creating users in the workspace's pool."""

from __future__ import annotations

import re

from sqlalchemy import select

from idp.db import db, dialect_insert, new_id
from idp.errors import BadRequest
from idp.users.models import User, normalize_email

# Deliberately plain: one "@", no spaces, a dot in the domain. Deliverability is proven by mail.
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s.]{2,63}$")


def validate_email(email: str) -> str:
    """The email trimmed, or ``invalid_email``."""
    value = (email or "").strip()
    if len(value) > 320 or not _EMAIL.match(value):
        raise BadRequest("invalid_email", "That is not an email address", field="email")
    return value


def find_user_by_email(workspace_id: str, email: str) -> User | None:
    return db.session.scalar(
        select(User).where(
            User.workspace_id == workspace_id, User.email_normalized == normalize_email(email)
        )
    )


def get_or_create_user(workspace_id: str, email: str | None, name: str | None = None) -> User:
    """The workspace user with this email (case-insensitive), created if there is none.

    Without an email (an IdP may provision users by name alone) a new user is created: there
    is nothing to link on.
    """
    if email is None:
        user = User(workspace_id=workspace_id, name=name)
        db.session.add(user)
        db.session.flush()
        return user
    email = validate_email(email)
    # Two orgs may admit the same new person at once: insert-if-absent (one statement for a
    # new person), else read the row that is there (ours or a concurrent one), instead of
    # failing on the unique key.
    created = db.session.scalar(
        dialect_insert(User)
        .values(
            id=new_id("usr"),
            workspace_id=workspace_id,
            email=email,
            email_normalized=normalize_email(email),
            name=name,
        )
        .on_conflict_do_nothing(index_elements=["workspace_id", "email_normalized"])
        .returning(User),
        execution_options={"populate_existing": True},
    )
    return created or find_user_by_email(workspace_id, email)
