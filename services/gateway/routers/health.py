"""GET /health (no auth) and GET /metrics (Prometheus text; a user's token or SPARKPILOT_METRICS_TOKEN)."""

from __future__ import annotations

import enum
import logging
from typing import Any

import httpx
import redis
from fastapi import APIRouter, Depends, Response
from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from services.gateway.deps import Settings, metrics_reader
from services.gateway.http_metrics import LATENCY, REQUESTS
from sparkpilot.queue import queue_depth
from sparkpilot.db.models import JobStatus, Run, RunStatus, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.heartbeat import alive_pattern
from sparkpilot.metrics import SHARED
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import HealthPublic

log = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])


def check_database() -> str:
    """'ok' or 'down: …'."""
    try:
        with session_scope() as s:
            s.execute(text("SELECT 1"))
        return "ok"
    except SQLAlchemyError as exc:
        return f"down: {type(exc).__name__}"


def check_redis_and_services() -> tuple[str, str, str]:
    """'ok' | 'down: …' for Redis, for live run workers and for live trainers (their heartbeats)."""
    client = get_redis()
    try:
        client.ping()
        alive = {kind: any(True for _ in client.scan_iter(match=alive_pattern(kind), count=100))
                 for kind in ("worker", "trainer")}
    except redis.RedisError as exc:
        return f"down: {type(exc).__name__}", "unknown: redis is down", "unknown: redis is down"
    return ("ok", *("ok" if alive[k] else f"down: no {k} heartbeat" for k in ("worker", "trainer")))  # type: ignore[return-value]


async def check_inference(url: str | None) -> str:
    """'ok', 'down: …', or 'not configured' when no inference URL is set."""
    if not url:
        return "not configured"
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            resp = await client.get(url.rstrip("/").removesuffix("/v1") + "/health")
        return "ok" if resp.status_code == 200 else f"down: HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        return f"down: {type(exc).__name__}"


@router.get("/health", response_model=HealthPublic)
async def health(settings: Settings) -> HealthPublic:
    """Liveness of every service; 'degraded' (never a 500) when one that runs need is down.

    The trainer is reported but does not degrade the status: runs are served without it.
    """
    database = await run_in_threadpool(check_database)
    redis_state, worker, trainer = await run_in_threadpool(check_redis_and_services)
    checks = {"database": database, "redis": redis_state, "worker": worker,
              "inference": await check_inference(settings.inference_url)}
    ok = all(v in ("ok", "not configured") for v in checks.values())
    checks["trainer"] = trainer
    return HealthPublic(status="ok" if ok else "degraded", checks=checks)


def _by_status(name: str, documentation: str, column: Any, statuses: type[enum.Enum]) -> GaugeMetricFamily:
    """A gauge of rows per status, every status present (0 when none); empty if the database is down."""
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    try:
        with session_scope() as s:
            counts = dict(s.execute(select(column, func.count()).group_by(column)).all())
        for st in statuses:
            family.add_metric([st.value], counts.get(st, 0))
    except SQLAlchemyError as exc:
        log.warning("metrics: database unavailable: %s", exc)
    return family


class _Collector:
    """Reads run and job counts from the database and shared metrics from Redis at scrape time."""

    def collect(self):  # noqa: ANN201 - prometheus_client protocol
        yield _by_status("sparkpilot_runs", "Runs by status", Run.status, RunStatus)
        yield _by_status("sparkpilot_training_jobs", "Training jobs by status", TrainingJob.status, JobStatus)
        try:
            depth = GaugeMetricFamily("sparkpilot_queue_depth", "Runs waiting on the worker queue")
            depth.add_metric([], queue_depth())
            yield depth
            for metric in SHARED:  # observed by the workers and the trainer, kept in Redis
                yield metric.collect(get_redis())
        except redis.RedisError as exc:
            log.warning("metrics: redis unavailable: %s", exc)


_registry = CollectorRegistry()
_registry.register(_Collector())
_registry.register(REQUESTS)  # the gateway's own requests, counted in process
_registry.register(LATENCY)
ProcessCollector(registry=_registry)  # the gateway's own CPU and memory


@router.get("/metrics", dependencies=[Depends(metrics_reader)])
def metrics() -> Response:
    """Prometheus text exposition (any user's token, or the metrics token)."""
    return Response(generate_latest(_registry), media_type="text/plain; version=0.0.4; charset=utf-8")
