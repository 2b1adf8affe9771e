"""The user model."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from idp.db import created_column, db, enum_column, id_column, updated_column


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


def normalize_email(email: str) -> str:
    """The lookup key of an email: trimmed and case-folded (emails match case-insensitively)."""
    return email.strip().lower()


class User(db.Model):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("workspace_id", "email_normalized"),)

    id: Mapped[str] = id_column("usr")
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    # A user provisioned by an IdP that sends no email has none; they sign in through that IdP.
    email: Mapped[str | None] = mapped_column(String(320))
    email_normalized: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    email_verified: Mapped[bool] = mapped_column(default=False)
    status: Mapped[UserStatus] = mapped_column(
        enum_column(UserStatus, "user_status"), default=UserStatus.ACTIVE
    )
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
