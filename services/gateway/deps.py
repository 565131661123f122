"""FastAPI dependencies: settings, a DB session, the current user (and an admin-only variant)."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Query
from sqlalchemy.orm import Session

from sparkpilot.auth import hash_token, user_for_token
from sparkpilot.db.models import User
from sparkpilot.db.session import session_scope
from sparkpilot.errors import Forbidden, SparkpilotError
from sparkpilot.settings import GatewaySettings, get_gateway_settings


class Unauthorized(SparkpilotError):
    """Missing or unknown bearer token."""

    status_code = 401
    code = "unauthorized"


def get_db() -> Iterator[Session]:
    """A session per request; commits when the handler returns."""
    with session_scope() as session:
        yield session


# WebSocket clients that cannot send headers (browsers) offer these subprotocols: the name, and the token.
WS_PROTOCOL = "sparkpilot"
WS_TOKEN_PREFIX = "bearer."


def bearer_token(authorization: str | None) -> str | None:
    """The token from an 'Authorization: Bearer …' header."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def authenticate(session: Session, token: str | None) -> User:
    """The token's user, or Unauthorized."""
    user = user_for_token(session, token) if token else None
    if user is None:
        raise Unauthorized("a valid bearer token is required (Authorization: Bearer <token>)")
    return user


def current_user(
    db: Annotated[Session, Depends(get_db)], authorization: Annotated[str | None, Header()] = None
) -> User:
    """The authenticated user of this request."""
    user = authenticate(db, bearer_token(authorization))
    # End the lookup's transaction: its pooled connection is given back while the request waits for a
    # thread to run its handler (under load, 200 waiting requests held the 40 connections and timed out).
    db.commit()
    return user


def metrics_reader(
    settings: Annotated[GatewaySettings, Depends(get_gateway_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """Any user's token, or SPARKPILOT_METRICS_TOKEN, which opens GET /metrics and nothing else."""
    token = bearer_token(authorization)
    # Compared as hashes: equal lengths, so the time taken tells nothing of the secret.
    if token and settings.metrics_token and hmac.compare_digest(hash_token(token), hash_token(settings.metrics_token)):
        return
    with session_scope() as session:
        authenticate(session, token)


def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    """The authenticated user if they are an admin, else Forbidden."""
    if not user.is_admin:
        raise Forbidden("this operation needs an admin token")
    return user


# Bounds on client-chosen integers: past them, 422 (not a database overflow). 2**53: exact in JSON too.
MAX_INT = 2**53
Offset = Annotated[int, Query(ge=0, le=MAX_INT)]
EventId = Annotated[int, Query(ge=0, le=MAX_INT)]

DB = Annotated[Session, Depends(get_db)]
CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
Settings = Annotated[GatewaySettings, Depends(get_gateway_settings)]
