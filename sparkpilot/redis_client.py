"""One Redis client per process, with short timeouts so an outage fails fast."""

from __future__ import annotations

from functools import lru_cache

import redis
import redis.asyncio as aioredis

from sparkpilot.settings import get_settings

_TIMEOUTS = dict(socket_connect_timeout=1.0, socket_timeout=5.0, health_check_interval=10)


def get_redis(url: str | None = None) -> redis.Redis:
    """A synchronous client, one per URL (default: settings.redis_url, read now); fork-safe: redis-py
    re-creates connections in a child."""
    return _client(url or get_settings().redis_url)


@lru_cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, **_TIMEOUTS)


def get_async_redis(url: str | None = None) -> aioredis.Redis:
    """A new asyncio client; the caller closes it (it is bound to the running loop)."""
    return aioredis.Redis.from_url(url or get_settings().redis_url, **_TIMEOUTS)
