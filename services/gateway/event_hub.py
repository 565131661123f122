"""One Redis pub/sub connection per gateway process, shared by every open event stream.

The hub pattern-subscribes to every run's and job's event channel and hands each message to the
streams listening on that channel. A stream never opens its own Redis connection, so 200 open
streams cost one connection, not 200. When the connection drops or comes back, every listener gets
RESYNC and re-reads the database (events are stored before they are published), so nothing is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Iterator

import redis

from sparkpilot.redis_client import get_async_redis
from sparkpilot.settings import get_settings

log = logging.getLogger(__name__)
RESYNC = object()  # put on every listener's queue when messages may have been missed
RECONNECT_S = (0.2, 0.5, 1.0, 2.0)


class EventHub:
    """Fans one pattern subscription out to per-stream queues."""

    def __init__(self) -> None:
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        self.connected = False
        self._task: asyncio.Task | None = None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="event-hub")

    @contextlib.contextmanager
    def listen(self, channel: str) -> Iterator[asyncio.Queue]:
        """A queue of raw messages published on `channel` (and RESYNC), for the duration of the block."""
        self._ensure_running()
        queue: asyncio.Queue = asyncio.Queue()
        self.listeners.setdefault(channel, set()).add(queue)
        try:
            yield queue
        finally:
            group = self.listeners.get(channel)
            if group is not None:
                group.discard(queue)
                if not group:
                    del self.listeners[channel]

    def _resync_all(self) -> None:
        for group in self.listeners.values():
            for queue in group:
                queue.put_nowait(RESYNC)

    async def _run(self) -> None:
        prefix = get_settings().key_prefix
        patterns = (f"{prefix}:run:*:events", f"{prefix}:job:*:events", f"{prefix}:run:*:frames")
        failures = 0
        while True:
            client = get_async_redis()
            pubsub = client.pubsub()
            try:
                await pubsub.psubscribe(*patterns)
                self.connected, failures = True, 0
                self._resync_all()  # anything published while we were away is in the database
                while True:
                    msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
                    if msg is None:
                        continue
                    channel = msg["channel"].decode() if isinstance(msg["channel"], bytes) else msg["channel"]
                    for queue in self.listeners.get(channel, ()):
                        queue.put_nowait(msg["data"])
            except (redis.RedisError, OSError) as exc:
                if self.connected:
                    log.warning("event hub: Redis pub/sub lost (%s); streams read the database until it is back", exc)
                self.connected = False
                self._resync_all()
                await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
                failures += 1
            finally:
                with contextlib.suppress(redis.RedisError, OSError):
                    await pubsub.aclose()
                with contextlib.suppress(redis.RedisError, OSError):
                    await client.aclose()


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EventHub] = weakref.WeakKeyDictionary()


def get_hub() -> EventHub:
    """The running event loop's hub (a gateway process has one loop; tests may start several)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = EventHub()
    return hub
