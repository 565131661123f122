"""One error envelope for the whole API: {"error": {"type", "message", "code"}}."""

from __future__ import annotations

import logging

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sparkpilot.errors import SparkpilotError

log = logging.getLogger(__name__)

_TYPES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 422: "validation_error", 429: "rate_limited",
          503: "unavailable"}


def envelope(status: int, message: str, code: str | None = None, headers: dict | None = None) -> JSONResponse:
    """The error response for `status`."""
    type_ = _TYPES.get(status, "server_error" if status >= 500 else "error")
    body = {"error": {"type": type_, "message": message, "code": code or type_}}
    return JSONResponse(body, status_code=status, headers=headers)


def _describe(errors: list[dict]) -> str:
    parts = []
    for e in errors:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map every error the API can raise onto the envelope."""

    @app.exception_handler(SparkpilotError)
    async def _domain(_req: Request, exc: SparkpilotError) -> JSONResponse:
        return envelope(exc.status_code, exc.message, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return envelope(422, _describe(exc.errors()), "validation_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        return envelope(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(redis.RedisError)
    async def _redis(_req: Request, exc: redis.RedisError) -> JSONResponse:
        log.warning("redis unavailable: %s", exc)
        return envelope(503, "the queue (Redis) is unreachable; try again shortly", "redis_unavailable")

    @app.exception_handler(OperationalError)
    async def _db(_req: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return envelope(503, "the database is unreachable; try again shortly", "database_unavailable")

    @app.exception_handler(SQLAlchemyError)
    async def _db_other(_req: Request, exc: SQLAlchemyError) -> JSONResponse:
        log.exception("database error")
        return envelope(500, "database error", "database_error")
