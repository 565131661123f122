"""Users and bearer tokens; only SHA-256 hashes of tokens are stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkpilot import audit
from sparkpilot.db.models import ApiToken, User, utcnow
from sparkpilot.errors import Conflict, InvalidInput, NotFound

ADMIN_USER = "admin"
ADMIN_TOKEN_LABEL = "SPARKPILOT_ADMIN_TOKEN"


def hash_token(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def get_or_create_user(session: Session, name: str, is_admin: bool = False) -> User:
    """The user called `name`, created if new."""
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        user = User(name=name, is_admin=is_admin)
        session.add(user)
        session.flush()
    return user


def create_token(session: Session, user_name: str, label: str = "", actor: User | None = None) -> tuple[str, ApiToken]:
    """Make a new random token for `user_name` (creating the user); the token is returned in clear, once."""
    if label == ADMIN_TOKEN_LABEL:
        raise InvalidInput(f"the label {ADMIN_TOKEN_LABEL} is reserved for the configured admin token", code="reserved_label")
    user = get_or_create_user(session, user_name)
    token = "sp_" + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, token_hash=hash_token(token), label=label)
    session.add(row)
    session.flush()
    audit.record(session, actor, "token.created", "token", row.id, user=user_name, label=label)
    return token, row


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token (never its hash in any answer), newest first."""
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def revoke_token(session: Session, token_id: int, actor: User | None = None, admin_token: str | None = None) -> ApiToken:
    """Revoke a token: it authenticates nobody from now on; 404 unknown, 409 already revoked or the configured
    admin token (`admin_token`, recognised by its hash)."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"token {token_id} not found", code="token_not_found")
    if row.revoked_at is not None:
        raise Conflict(f"token {token_id} is already revoked", code="token_revoked")
    if admin_token is not None and row.token_hash == hash_token(admin_token):
        raise Conflict("this is the configured admin token: change SPARKPILOT_ADMIN_TOKEN and restart instead",
                       code="admin_token")
    row.revoked_at = utcnow()
    audit.record(session, actor, "token.revoked", "token", row.id, user=row.user.name, label=row.label)
    return row


def ensure_admin_token(session: Session, token: str) -> User:
    """Register the configured admin token for the admin user (idempotent); one configured before it is revoked."""
    admin = get_or_create_user(session, ADMIN_USER, is_admin=True)
    digest = hash_token(token)
    if session.scalar(select(ApiToken).where(ApiToken.token_hash == digest)) is None:
        session.add(ApiToken(user_id=admin.id, token_hash=digest, label=ADMIN_TOKEN_LABEL))
        session.flush()
    # SPARKPILOT_ADMIN_TOKEN was rotated: the old value must stop working, not live on in the database.
    for old in session.scalars(select(ApiToken).where(ApiToken.label == ADMIN_TOKEN_LABEL, ApiToken.token_hash != digest,
                                                      ApiToken.revoked_at.is_(None))):
        old.revoked_at = utcnow()
        audit.record(session, None, "token.revoked", "token", old.id, user=ADMIN_USER, label=ADMIN_TOKEN_LABEL,
                     reason="SPARKPILOT_ADMIN_TOKEN rotated")
    return admin


def user_for_token(session: Session, token: str) -> User | None:
    """The user a token belongs to, or None."""
    return session.scalar(
        select(User).join(ApiToken).where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    )
