"""Users and bearer tokens; only SHA-256 hashes of tokens are stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from sparkpilot.db.models import ApiToken, User

ADMIN_USER = "admin"


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


def create_token(session: Session, user_name: str, label: str = "") -> str:
    """Make a new random token for `user_name` (creating the user) and return it in clear, once."""
    user = get_or_create_user(session, user_name)
    token = "sp_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label=label))
    session.flush()
    return token


def ensure_admin_token(session: Session, token: str) -> User:
    """Register the configured admin token for the admin user (idempotent)."""
    admin = get_or_create_user(session, ADMIN_USER, is_admin=True)
    digest = hash_token(token)
    if session.scalar(select(ApiToken).where(ApiToken.token_hash == digest)) is None:
        session.add(ApiToken(user_id=admin.id, token_hash=digest, label="SPARKPILOT_ADMIN_TOKEN"))
        session.flush()
    return admin


def user_for_token(session: Session, token: str) -> User | None:
    """The user a token belongs to, or None."""
    return session.scalar(
        select(User).join(ApiToken).where(ApiToken.token_hash == hash_token(token))
    )
