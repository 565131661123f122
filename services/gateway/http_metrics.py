"""Prometheus metrics of the gateway's own HTTP traffic: requests by route, method and status, and latency."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Registered on /metrics' registry by routers/health.py (registry=None: not the process-global default).
REQUESTS = Counter("sparkpilot_http_requests", "HTTP requests to the gateway", ["method", "route", "status"],
                   registry=None)
LATENCY = Histogram("sparkpilot_http_request_duration_seconds", "Time to the response's first byte, by route",
                    ["method", "route"], registry=None,
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class HttpMetrics:
    """ASGI middleware: count and time each HTTP request under its route's template (not its ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = 500
        timed = False

        async def send_and_time(message: Message) -> None:
            nonlocal status, timed
            if message["type"] == "http.response.start":
                status = message["status"]
                if not timed:
                    timed = True
                    LATENCY.labels(scope["method"], _route(scope)).observe(time.perf_counter() - t0)
            await send(message)

        try:
            await self.app(scope, receive, send_and_time)
        finally:
            REQUESTS.labels(scope["method"], _route(scope), str(status)).inc()


def _route(scope: Scope) -> str:
    """The matched route's path template (/api/v1/runs/{run_id}); mounts and unmatched paths by their prefix."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return path
    first = "/" + scope["path"].lstrip("/").split("/", 1)[0]
    return first if first in ("/static", "/benchmarks", "/mcp") else "unmatched"
