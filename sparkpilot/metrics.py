"""Prometheus metrics that several processes feed and the gateway exposes.

Workers are separate processes, so histograms they observe are kept in Redis hashes
and read back by the gateway's collector at scrape time.
"""

from __future__ import annotations

import logging

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from sparkpilot.settings import get_settings

log = logging.getLogger(__name__)


class RedisHistogram:
    """A cumulative histogram stored in Redis hashes (bucket counts, sum, count), one per label value."""

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...], label: str | None = None) -> None:
        self.name = name
        self.documentation = documentation
        self.buckets = tuple(sorted(buckets))
        self.label = label

    @property
    def redis_key(self) -> str:
        """Hash that holds this histogram (the unlabelled one)."""
        return get_settings().key("metrics", self.name)

    def _key(self, value: str | None) -> str:
        return self.redis_key if value is None else f"{self.redis_key}:{value}"

    def observe(self, client: redis.Redis, value: float, label: str | None = None) -> None:
        """Record one observation (under `label`'s value); a Redis failure only loses the sample."""
        self.observe_many(client, [(value, label)])

    def observe_many(self, client: redis.Redis, samples: list[tuple[float, str | None]]) -> None:
        """Record several (value, label) observations in one round trip."""
        try:
            pipe = client.pipeline(transaction=False)
            for value, label in samples:
                bucket = next((b for b in self.buckets if value <= b), float("inf"))
                key = self._key(label)
                if label is not None:
                    pipe.sadd(f"{self.redis_key}:labels", label)
                pipe.hincrby(key, repr(bucket), 1)
                pipe.hincrbyfloat(key, "sum", value)
                pipe.hincrby(key, "count", 1)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("metric %s not recorded: %s", self.name, exc)

    def collect(self, client: redis.Redis) -> HistogramMetricFamily:
        """Read the hashes back as a Prometheus histogram."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label] if self.label else None)
        values = sorted(v.decode() if isinstance(v, bytes) else v
                        for v in client.smembers(f"{self.redis_key}:labels")) if self.label else [None]
        for value in values:
            raw = {k.decode() if isinstance(k, bytes) else k: float(v) for k, v in client.hgetall(self._key(value)).items()}
            cumulative, running = [], 0.0
            for b in (*self.buckets, float("inf")):
                running += raw.get(repr(b), 0.0)
                cumulative.append(("+Inf" if b == float("inf") else repr(b), running))
            family.add_metric([value] if value is not None else [], cumulative, sum_value=raw.get("sum", 0.0))
        return family


class RedisCounter:
    """A counter kept in one Redis hash, one field per label value (shared by every worker process)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label

    @property
    def redis_key(self) -> str:
        """Hash that holds the counts."""
        return get_settings().key("metrics", self.name)

    def inc(self, client: redis.Redis, label: str, amount: float = 1) -> None:
        """Add `amount` under `label`; a Redis failure only loses the count."""
        try:
            client.hincrbyfloat(self.redis_key, label, amount)
        except redis.RedisError as exc:
            log.debug("metric %s not recorded: %s", self.name, exc)

    def collect(self, client: redis.Redis) -> CounterMetricFamily:
        """Read the hash back as a Prometheus counter."""
        family = CounterMetricFamily(self.name, self.documentation, labels=[self.label])
        for key, value in sorted(client.hgetall(self.redis_key).items()):
            family.add_metric([key.decode() if isinstance(key, bytes) else key], float(value))
        return family


class RedisGauge:
    """The last value set for each label value (e.g. a training job's latest loss)."""

    def __init__(self, name: str, documentation: str, label: str) -> None:
        self.name, self.documentation, self.label = name, documentation, label

    def set(self, client: redis.Redis, label: str, value: float) -> None:
        """Set the gauge under `label`; a Redis failure only loses the value."""
        try:
            client.hset(get_settings().key("metrics", self.name), label, value)
        except redis.RedisError as exc:
            log.debug("metric %s not recorded: %s", self.name, exc)

    def collect(self, client: redis.Redis) -> GaugeMetricFamily:
        """Read the hash back as a Prometheus gauge."""
        family = GaugeMetricFamily(self.name, self.documentation, labels=[self.label])
        for key, value in sorted(client.hgetall(get_settings().key("metrics", self.name)).items()):
            family.add_metric([key.decode() if isinstance(key, bytes) else key], float(value))
        return family


STEP_SECONDS = RedisHistogram(
    "sparkpilot_step_duration_seconds",
    "Wall time of one run step in the worker (its _count is the number of steps)",
    (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STEP_PHASE_SECONDS = RedisHistogram(
    "sparkpilot_step_phase_seconds",
    "Time of each phase of a step: observe, prompt, model, parse_guard, approval, act, persist",
    (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    label="phase",
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
TRAINING_PHASE_SECONDS = RedisHistogram(
    "sparkpilot_training_phase_seconds",
    "Duration of each phase of a training job: prepare, train, evaluate, publish",
    (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
    label="phase",
)
BROWSER_RESTARTS = RedisCounter("sparkpilot_browser_restarts_total",
                                "Browser relaunches after a crash, by what was relaunched", "what")
MODEL_ERRORS = RedisCounter("sparkpilot_model_errors_total",
                            "Runs ended by the model server: unreachable, or an error answer", "kind")
TRAINING_LOSS = RedisGauge("sparkpilot_training_loss", "The latest training loss reported by each job", "job")
HISTOGRAMS = (STEP_SECONDS, STEP_PHASE_SECONDS, EVENT_PUBLISH_SECONDS, QUEUE_WAIT_SECONDS, TRAINING_PHASE_SECONDS)
SHARED = (*HISTOGRAMS, BROWSER_RESTARTS, MODEL_ERRORS, TRAINING_LOSS)
