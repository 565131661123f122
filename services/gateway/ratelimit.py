"""Rate limiting per token and per client IP (the `limits` library, counters in Redis, shared by every
gateway process): past a limit, 429 in the error envelope with Retry-After; a WebSocket handshake counts
too and is closed with 4429."""

from __future__ import annotations

import hashlib
import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.deps import WS_PROTOCOL, WS_TOKEN_PREFIX, bearer_token
from services.gateway.errors import envelope
from sparkpilot.settings import GatewaySettings

log = logging.getLogger(__name__)
LIMITED = ("/api/", "/mcp")  # health, metrics, the dashboard's files and the benchmark pages are not limited


class RateLimit:
    """ASGI middleware: count each API request against its token's and its IP's limit."""

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.per_token: RateLimitItem | None = parse(settings.rate_limit_per_token) if settings.rate_limit_per_token else None
        self.per_ip: RateLimitItem | None = parse(settings.rate_limit_per_ip) if settings.rate_limit_per_ip else None
        url = settings.redis_url.replace("redis://", "async+redis://", 1).replace("rediss://", "async+rediss://", 1)
        self.limiter = MovingWindowRateLimiter(RedisStorage(url, implementation="redispy",
                                                            key_prefix=settings.key("ratelimit")))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(LIMITED):
            return await self.app(scope, receive, send)
        try:
            refusal = await self._refusal(scope)
        except RedisError as exc:  # the limiter must not take the API down with Redis: /health reports Redis
            log.warning("rate limiter unavailable (%s); request let through", exc)
            refusal = None
        if refusal is None:
            return await self.app(scope, receive, send)
        message, retry = refusal
        if scope["type"] == "websocket":  # a handshake counts like a request; the refusal is a close code
            await receive()  # websocket.connect
            offered = dict(scope["headers"]).get(b"sec-websocket-protocol", b"").decode("latin-1")
            await send({"type": "websocket.accept", **({"subprotocol": WS_PROTOCOL} if WS_PROTOCOL in offered else {})})
            return await send({"type": "websocket.close", "code": 4429, "reason": message[:120]})
        resp = envelope(429, message, "rate_limited", headers={"Retry-After": str(retry)})
        await resp(scope, receive, send)

    async def _refusal(self, scope: Scope) -> tuple[str, int] | None:
        """(message, seconds to wait) when the request is over its token's or its IP's limit, else None."""
        headers = dict(scope["headers"])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        if not token and scope["type"] == "websocket":  # a browser offers it as a subprotocol
            offered = [p.strip() for p in headers.get(b"sec-websocket-protocol", b"").decode("latin-1").split(",")]
            token = next((p[len(WS_TOKEN_PREFIX):] for p in offered if p.startswith(WS_TOKEN_PREFIX)), None)
        checks = []
        if self.per_token and token:  # the token's hash: the key names no secret
            checks.append((self.per_token, "token", hashlib.sha256(token.encode()).hexdigest()[:32]))
        if self.per_ip and scope.get("client"):
            checks.append((self.per_ip, "ip", scope["client"][0]))
        for item, kind, key in checks:
            if await self.limiter.hit(item, kind, key):
                continue
            stats = await self.limiter.get_window_stats(item, kind, key)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            return f"too many requests for this {kind}: the limit is {item}; retry in {retry} s", retry
        return None
