"""Prometheus metrics that several processes feed and the gateway exposes.

Workers are separate processes, so histograms they observe are kept in Redis hashes
and read back by the gateway's collector at scrape time.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client.core import HistogramMetricFamily

from sparkpilot.settings import get_settings

log = logging.getLogger(__name__)


class RedisHistogram:
    """A cumulative histogram stored in one Redis hash (bucket counts, sum, count)."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.buckets = tuple(sorted(buckets))

    @property
    def redis_key(self) -> str:
        """Hash that holds this histogram."""
        return get_settings().key("metrics", self.name)

    def observe(self, client: redis.Redis, value: float) -> None:
        """Record one observation; a Redis failure only loses the sample."""
        bucket = next((b for b in self.buckets if value <= b), float("inf"))
        try:
            pipe = client.pipeline(transaction=False)
            pipe.hincrby(self.redis_key, repr(bucket), 1)
            pipe.hincrbyfloat(self.redis_key, "sum", value)
            pipe.hincrby(self.redis_key, "count", 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("metric %s not recorded: %s", self.name, exc)

    def collect(self, client: redis.Redis) -> HistogramMetricFamily:
        """Read the hash back as a Prometheus histogram."""
        raw = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in client.hgetall(self.redis_key).items()}
        cumulative, running = [], 0.0
        for b in (*self.buckets, float("inf")):
            running += raw.get(repr(b), 0.0)
            cumulative.append(("+Inf" if b == float("inf") else repr(b), running))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], cumulative, sum_value=raw.get("sum", 0.0))
        return family


STEP_SECONDS = RedisHistogram(
    "sparkpilot_step_duration_seconds",
    "Wall time of one run step in the worker",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
EVENT_PUBLISH_SECONDS = RedisHistogram(
    "sparkpilot_event_publish_latency_seconds",
    "Time from an event's creation to its publication on Redis",
    (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
QUEUE_WAIT_SECONDS = RedisHistogram(
    "sparkpilot_queue_wait_seconds",
    "Time a run waited between creation and a worker starting it",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
HISTOGRAMS = (STEP_SECONDS, EVENT_PUBLISH_SECONDS, QUEUE_WAIT_SECONDS)
