"""The gateway: FastAPI app with the REST API, live streams, dashboard, /health and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import envelope, install_error_handlers
from services.gateway.http_metrics import HttpMetrics
from services.gateway.mcp_server import build_mcp, http_app, http_token
from services.gateway.hardening import RefuseNul, SecurityHeaders, TrustedHosts
from services.gateway.ratelimit import RateLimit
from services.gateway.reaper import reaper_loop
from services.gateway.routers import admin, agents, collections, control, health, models, runs, stream, team, training
from services.gateway.routers import benchmarks, system
from agent.miniwob import html_dir
from sparkpilot.auth import ensure_admin_token
from sparkpilot.db.session import session_scope
from sparkpilot.run_files import private_umask
from sparkpilot.settings import get_gateway_settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


# Uploads streamed to disk by their routes, which enforce their own caps: (path, cap setting).
UPLOADS = ((re.compile(r"^/api/v1/runs/[^/]+/files$"), "run_file_max_bytes"),
           (re.compile(r"^/api/v1/collections/[^/]+/documents$"), "document_max_bytes"))


class BodyLimit:
    """ASGI middleware: 413 with the error envelope for bodies over `max_bytes`.

    An upload (run files, documents) is streamed to disk by its route, which enforces its own cap
    (`upload_caps`); here it is only held to that cap's Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_caps: dict[str, int]) -> None:
        self.app, self.max_bytes, self.upload_caps = app, max_bytes, upload_caps

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = next((cap for path, cap in UPLOADS if path.match(scope["path"])), None)
        if scope["method"] == "POST" and upload is not None:
            declared = dict(scope["headers"]).get(b"content-length")
            limit = self.upload_caps[upload]
            if declared is not None and declared.isdigit() and int(declared) > limit:
                resp = envelope(413, f"the file is larger than {limit} bytes (SPARKPILOT_{upload.upper()})",
                                "file_too_large")
                return await resp(scope, receive, send)
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit():
            # The server holds the client to its Content-Length, so the header is enough.
            if int(declared) > self.max_bytes:
                return await self._too_large(scope, receive, send)
            return await self.app(scope, receive, send)
        # Chunked body of unknown size: read it (at most max_bytes) before the app sees it.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._too_large(scope, receive, send)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        resp = envelope(413, f"request body is larger than {self.max_bytes} bytes", "body_too_large")
        await resp(scope, receive, send)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Keep files private, register the admin token; run the reaper and the MCP session manager while the app lives."""
    private_umask()
    settings = get_gateway_settings()
    with session_scope() as s:
        ensure_admin_token(s, settings.admin_token)
    reaper = asyncio.create_task(reaper_loop(settings))
    log.info("gateway ready on %s:%s", settings.host, settings.port)
    async with app.state.mcp.session_manager.run():
        yield
    reaper.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reaper
    await models.close_shared_client()


def create_app() -> FastAPI:
    """Build the FastAPI application."""
    settings = get_gateway_settings()
    settings.configure_logging()
    app = FastAPI(title="Sparkpilot", version="0.1.0", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(team.router)
    app.include_router(control.router)
    app.include_router(agents.router)
    app.include_router(admin.router)
    app.include_router(collections.router)
    app.include_router(stream.router)
    app.include_router(models.router)
    app.include_router(training.router)
    app.include_router(benchmarks.router)
    app.include_router(system.router)
    # MCP clients (editors, assistants) reach the same tools at /mcp with the same bearer tokens.
    app.state.mcp = build_mcp(http_token)
    app.add_route("/mcp", http_app(app.state.mcp), include_in_schema=False)

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # MiniWoB++ task pages (public benchmark files): a MiniWoB run's start_url can be the gateway itself,
    # e.g. http://gateway:8000/benchmarks/miniwob/click-button.html under compose.
    app.mount("/benchmarks", StaticFiles(directory=html_dir()), name="benchmarks")

    app.add_middleware(RefuseNul)  # inside BodyLimit: it reads bodies already held to their cap
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       upload_caps={cap: getattr(settings, cap) for _, cap in UPLOADS})
    app.add_middleware(RateLimit, settings=settings)  # a limited client costs no body read
    app.add_middleware(TrustedHosts, allowed_hosts=settings.trusted_hosts)  # before anything counts against a limit
    app.add_middleware(SecurityHeaders)
    app.add_middleware(HttpMetrics)  # outermost: counts every answer, 413s and 429s included
    return app


app = create_app()
