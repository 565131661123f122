"""HTTP hardening: trusted Host headers, security headers, redirects that never repeat the request's Host header,
and no NUL in text.

A Host header outside SPARKPILOT_TRUSTED_HOSTS is a 400 `untrusted_host` (HTTP and WebSocket handshakes alike):
a page whose name an attacker re-points at this machine (DNS rebinding) gets no answer from the gateway.

NUL characters: PostgreSQL cannot store them in text, and no field of this API means one, so a request
whose path, query or JSON body holds one is a 422 here, before any route (one check for every field).

The dashboard (`/` and `/static/`) gets a Content-Security-Policy without inline script, so an injected
string can never run as code, and may not be framed (clickjacking). The MiniWoB++ pages under
/benchmarks are third-party task pages with inline scripts: they keep only `nosniff`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.errors import envelope

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
DASHBOARD = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
             (b"referrer-policy", b"no-referrer")]


class TrustedHosts:
    """ASGI middleware: Starlette's TrustedHostMiddleware judges the Host header; a refusal is our 400 envelope."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str]) -> None:
        self.app = app
        # The judge answers 204 for a trusted Host and its plain-text 400 otherwise; only its status is read.
        self.judge = TrustedHostMiddleware(Response(status_code=204), allowed_hosts, www_redirect=False)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.judge.allow_any or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        statuses = []

        async def verdict(message: Message) -> None:
            if message["type"].endswith("http.response.start"):  # websocket.http.response.start on a handshake
                statuses.append(message["status"])

        await self.judge(scope, receive, verdict)
        if statuses == [204]:
            return await self.app(scope, receive, send)
        host = Headers(scope=scope).get("host", "")
        message = f"the Host header {host[:200]!r} is not one this gateway answers to; add it to SPARKPILOT_TRUSTED_HOSTS"
        await envelope(400, message, "untrusted_host")(scope, receive, send)


class SecurityHeaders:
    """ASGI middleware: nosniff everywhere, CSP and frame denial on the dashboard, relative slash redirects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        dashboard = path == "/" or path.startswith("/static/")
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"location"]
                location = next((v for k, v in message.get("headers", []) if k.lower() == b"location"), None)
                if location is not None:
                    parts = urlsplit(location.decode("latin-1"))
                    if parts.netloc and parts.netloc == host:  # to this server: its path, not the client's Host header
                        location = urlunsplit(("", "", parts.path, parts.query, parts.fragment)).encode("latin-1")
                    headers.append((b"location", location))
                headers.append((b"x-content-type-options", b"nosniff"))
                if dashboard:
                    headers += DASHBOARD
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _nul_at(value: Any, path: str = "body") -> str | None:
    """Where in a JSON value a string (or key) holds a NUL, e.g. `body.actions[0].answer`; None if nowhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            found = f"{path}.{k!r}" if "\x00" in k else _nul_at(v, f"{path}.{k}")
            if found:
                return found
    if isinstance(value, list):
        return next((found for i, v in enumerate(value) if (found := _nul_at(v, f"{path}[{i}]"))), None)
    return None


class RefuseNul:
    """ASGI middleware: 422 `nul_character` for a NUL in the path, the query or any string of a JSON body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        query = scope.get("query_string", b"").decode("latin-1")
        if "\x00" in scope["path"] or "%00" in query:
            if scope["type"] == "websocket":
                return await send({"type": "websocket.close", "code": 4422})
            names = [k for k, v in parse_qsl(query, keep_blank_values=True) if "\x00" in k or "\x00" in v]
            return await _refuse(scope, receive, send, f"query parameter {names[0]!r}" if names else "the URL path")
        headers = dict(scope["headers"])
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH") \
                or b"json" not in headers.get(b"content-type", b""):
            return await self.app(scope, receive, send)
        messages, body, more = [], b"", True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if b"\\u0000" in body:
            try:
                where = _nul_at(json.loads(body))
            except ValueError:
                where = None  # not JSON: the route answers 422 for that itself
            if where:
                return await _refuse(scope, receive, send, where)

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, where: str) -> None:
    await envelope(422, f"{where} holds a NUL character, which no field accepts", "nul_character")(scope, receive, send)
