"""Admin-only REST endpoints: API tokens (list, create, revoke) and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from services.gateway.deps import AdminUser, DB, MAX_INT, Offset, Settings
from sparkpilot import audit, auth
from sparkpilot.admin_schemas import AuditEntryPublic, TokenCreate, TokenCreated, TokenPublic
from sparkpilot.db.models import ApiToken
from sparkpilot.schemas import Paginated

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


def _public(row: ApiToken) -> TokenPublic:
    return TokenPublic(id=row.id, user=row.user.name, admin=row.user.is_admin, label=row.label,
                       created_at=row.created_at, revoked_at=row.revoked_at)


@router.get("/tokens", response_model=list[TokenPublic])
def list_tokens(db: DB, _admin: AdminUser) -> list[TokenPublic]:
    """Every token, newest first (ids, users, labels, dates; tokens are stored only as hashes)."""
    return [_public(t) for t in auth.list_tokens(db)]


@router.post("/tokens", status_code=201, response_model=TokenCreated)
def create_token(body: TokenCreate, db: DB, admin: AdminUser) -> TokenCreated:
    """A new token for `user` (created if new, not an admin); the token is in this answer only."""
    token, row = auth.create_token(db, body.user, body.label, actor=admin)
    db.commit()
    return TokenCreated(**_public(row).model_dump(), token=token)


@router.delete("/tokens/{token_id}", response_model=TokenPublic)
def revoke_token(token_id: Annotated[int, Path(ge=1, le=MAX_INT)], db: DB, admin: AdminUser,
                 settings: Settings) -> TokenPublic:
    """Revoke a token; 404 unknown, 409 already revoked or the configured admin token."""
    row = auth.revoke_token(db, token_id, actor=admin, admin_token=settings.admin_token)
    db.commit()
    return _public(row)


@router.get("/audit", response_model=Paginated[AuditEntryPublic])
def audit_log(db: DB, _admin: AdminUser, action: Annotated[str | None, Query(max_length=64)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 100, offset: Offset = 0) -> dict:
    """The audit log, newest first; `action` filters (`token.` for every token action)."""
    items, total = audit.list_entries(db, action, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}
