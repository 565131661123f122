"""API schemas of the admin routes: tokens and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TokenCreate(BaseModel):
    """Body of POST /api/v1/admin/tokens."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user: str = Field(min_length=1, max_length=100)
    label: str = Field(default="", max_length=100)


class TokenPublic(BaseModel):
    """A token as the API shows it: never the token, never its hash."""

    id: int
    user: str
    admin: bool
    label: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    """A new token: `token` is shown this once."""

    token: str


class AuditEntryPublic(BaseModel):
    """One audit log entry."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    user_id: int | None
    actor: str
    action: str
    target_type: str
    target_id: str
    details: dict[str, Any]
