"""Liveness of Celery services: a Redis key each process refreshes while it runs; /health looks for them."""

from __future__ import annotations

import logging
import socket
import threading

import redis
from celery.signals import worker_ready, worker_shutdown

from sparkpilot.redis_client import get_redis
from sparkpilot.settings import get_settings

log = logging.getLogger(__name__)
ALIVE_TTL_S = 15


def alive_key(kind: str, hostname: str) -> str:
    """The key a live `kind` ('worker' or 'trainer') process refreshes."""
    return get_settings().key(kind, hostname)


def alive_pattern(kind: str) -> str:
    """The pattern matching every live `kind` process's key."""
    return get_settings().key(kind, "*")


def announce(kind: str) -> None:
    """Keep `kind`'s key alive from the Celery worker's start to its shutdown."""
    stop = threading.Event()

    def beat(hostname: str) -> None:
        while not stop.is_set():
            try:
                get_redis().set(alive_key(kind, hostname), "1", ex=ALIVE_TTL_S)
            except redis.RedisError as exc:
                log.warning("%s heartbeat failed: %s", kind, exc)
            stop.wait(5)

    def started(sender=None, **_kwargs) -> None:  # noqa: ANN001
        hostname = getattr(sender, "hostname", None) or socket.gethostname()
        threading.Thread(target=beat, args=(hostname,), daemon=True, name=f"{kind}-alive").start()

    def stopped(sender=None, **_kwargs) -> None:  # noqa: ANN001
        stop.set()
        try:
            get_redis().delete(alive_key(kind, getattr(sender, "hostname", None) or socket.gethostname()))
        except redis.RedisError:
            pass

    worker_ready.connect(started, weak=False)
    worker_shutdown.connect(stopped, weak=False)
