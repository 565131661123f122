"""Rate limiting per token and per client IP (the `limits` library, counters in Redis, shared by every
gateway process): past a limit, 429 in the error envelope with Retry-After."""

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

from services.gateway.deps import bearer_token
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
        if scope["type"] != "http" or not scope["path"].startswith(LIMITED):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        token = bearer_token(headers.get(b"authorization", b"").decode("latin-1"))
        checks = []
        if self.per_token and token:  # the token's hash: the key names no secret
            checks.append((self.per_token, "token", hashlib.sha256(token.encode()).hexdigest()[:32]))
        if self.per_ip and scope.get("client"):
            checks.append((self.per_ip, "ip", scope["client"][0]))
        for item, kind, key in checks:
            try:
                allowed = await self.limiter.hit(item, kind, key)
                if allowed:
                    continue
                stats = await self.limiter.get_window_stats(item, kind, key)
            except RedisError as exc:  # the limiter must not take the API down with Redis: /health reports Redis
                log.warning("rate limiter unavailable (%s); request let through", exc)
                return await self.app(scope, receive, send)
            retry = max(1, math.ceil(stats.reset_time - time.time()))
            resp = envelope(429, f"too many requests for this {kind}: the limit is {item}; retry in {retry} s",
                            "rate_limited", headers={"Retry-After": str(retry)})
            return await resp(scope, receive, send)
        await self.app(scope, receive, send)
