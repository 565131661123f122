"""GET /api/v1/system: the dashboard's System page — every service's health, queue depths, the model server's
throughput, memory, and the latest failures."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import httpx
import redis
from fastapi import APIRouter
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from services.gateway.deps import CurrentUser, Settings
from services.gateway.routers.health import check_database, check_inference, check_redis_and_services
from sparkpilot.db.models import HELD_STATUSES, JobStatus, Run, RunStatus, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.heartbeat import alive_pattern
from sparkpilot.queue import queue_depth
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import (MemoryStats, ModelServerStats, QueueDepths, RecentError, ServiceHealth,
                                SystemStatus)
from sparkpilot.settings import GatewaySettings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/v1", tags=["ops"])

RECENT_ERRORS = 10
# Services whose failure degrades runs (as on /health); the trainer is shown but does not.
ESSENTIAL = ("database", "redis", "worker", "inference")
# The model server's previous reading of its generated-token counter: (monotonic time, tokens), for the rate.
_last_tokens: dict[str, tuple[float, float]] = {}


def _service(name: str, detail: str, instances: int | None = None) -> ServiceHealth:
    status = ("ok" if detail == "ok" else "not configured" if detail == "not configured"
              else "down" if detail.startswith("down") else "unknown")
    return ServiceHealth(name=name, status=status, detail=detail, instances=instances)


def _instances() -> dict[str, int | None]:
    """Live worker and trainer processes (their heartbeat keys); None when Redis is down."""
    try:
        client = get_redis()
        return {kind: sum(1 for _ in client.scan_iter(match=alive_pattern(kind), count=100))
                for kind in ("worker", "trainer")}
    except redis.RedisError:
        return {"worker": None, "trainer": None}


def _queues(settings: GatewaySettings) -> QueueDepths:
    waiting: dict[str, int | None] = {"runs": None, "training": None}
    try:
        waiting = {"runs": queue_depth(settings.queue_name), "training": queue_depth(settings.training_queue)}
    except redis.RedisError as exc:
        log.warning("system: redis unavailable: %s", exc)
    runs: dict[RunStatus, int] | None = None
    jobs: dict[JobStatus, int] | None = None
    try:
        with session_scope() as s:
            runs = dict(s.execute(select(Run.status, func.count()).group_by(Run.status)).all())
            jobs = dict(s.execute(select(TrainingJob.status, func.count()).group_by(TrainingJob.status)).all())
    except SQLAlchemyError as exc:
        log.warning("system: database unavailable: %s", exc)
    return QueueDepths(
        runs_waiting=waiting["runs"], training_waiting=waiting["training"],
        runs_queued=None if runs is None else runs.get(RunStatus.queued, 0),
        runs_active=None if runs is None else sum(runs.get(st, 0) for st in HELD_STATUSES),
        training_queued=None if jobs is None else jobs.get(JobStatus.queued, 0),
        training_running=None if jobs is None else jobs.get(JobStatus.running, 0))


def parse_model_metrics(text: str) -> dict[str, float]:
    """Sums of the vLLM series the page shows, over their label sets (one per served model)."""
    wanted = {"vllm:generation_tokens_total": "generation", "vllm:prompt_tokens_total": "prompt",
              "vllm:num_requests_running": "running", "vllm:num_requests_waiting": "waiting",
              "vllm:kv_cache_usage_perc": "kv", "vllm:gpu_cache_usage_perc": "kv",
              "vllm:time_per_output_token_seconds_sum": "tpot_sum", "vllm:time_per_output_token_seconds_count": "tpot_n",
              "vllm:inter_token_latency_seconds_sum": "itl_sum", "vllm:inter_token_latency_seconds_count": "itl_n"}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = wanted.get(sample.name)
            if key:
                out[key] = out.get(key, 0.0) + float(sample.value)
    return out


async def _model_server(url: str | None) -> ModelServerStats:
    if not url:
        return ModelServerStats(reachable=False, detail="not configured")
    root = url.rstrip("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=3.0) as client:
            resp = await client.get(root + "/metrics")
    except httpx.HTTPError as exc:
        return ModelServerStats(reachable=False, detail=f"down: {type(exc).__name__}")
    if resp.status_code != 200:
        return ModelServerStats(reachable=False, detail=f"/metrics answered HTTP {resp.status_code}")
    try:
        m = parse_model_metrics(resp.text)
    except ValueError as exc:
        return ModelServerStats(reachable=True, detail=f"/metrics unreadable: {exc}")
    now, total = time.monotonic(), m.get("generation")
    rate = window = None
    if total is not None:
        prev = _last_tokens.get(root)
        if prev and now - prev[0] >= 0.5 and total >= prev[1]:
            window = round(now - prev[0], 1)
            rate = round((total - prev[1]) / (now - prev[0]), 2)
        if not prev or now - prev[0] >= 0.5 or total < prev[1]:
            _last_tokens[root] = (now, total)
    tpot_sum, tpot_n = m.get("tpot_sum", m.get("itl_sum")), m.get("tpot_n", m.get("itl_n"))
    decode = round(tpot_n / tpot_sum, 1) if tpot_n and tpot_sum else None
    kv = m.get("kv")
    return ModelServerStats(reachable=True, detail="ok", generation_tokens_total=total, prompt_tokens_total=m.get("prompt"),
                            generation_tokens_per_s=rate, window_s=window, decode_tokens_per_s=decode,
                            requests_running=m.get("running"), requests_waiting=m.get("waiting"),
                            kv_cache_usage=None if kv is None else round(kv, 4))


def _proc_kb(path: str, keys: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                name, _, rest = line.partition(":")
                if name in keys:
                    out[name] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError) as exc:
        log.debug("system: %s unreadable: %s", path, exc)
    return out


def _memory() -> MemoryStats:
    host = _proc_kb("/proc/meminfo", ("MemTotal", "MemAvailable"))
    me = _proc_kb("/proc/self/status", ("VmRSS",))
    return MemoryStats(host_total_bytes=host.get("MemTotal"), host_available_bytes=host.get("MemAvailable"),
                       gateway_rss_bytes=me.get("VmRSS"))


def _recent_errors(user_id: int, admin: bool) -> list[RecentError]:
    """The latest failed runs and training jobs (the caller's own unless an admin), newest first."""
    try:
        with session_scope() as s:
            runs = select(Run).where(Run.status == RunStatus.failed)
            jobs = select(TrainingJob).where(TrainingJob.status == JobStatus.failed)
            if not admin:
                runs, jobs = runs.where(Run.user_id == user_id), jobs.where(TrainingJob.user_id == user_id)
            rows = [RecentError(kind="run", id=r.id, title=r.task, reason=r.reason, at=r.finished_at or r.created_at)
                    for r in s.scalars(runs.order_by(Run.created_at.desc()).limit(RECENT_ERRORS))]
            rows += [RecentError(kind="training", id=j.id, title=f"training {j.name} ({j.method})", reason=j.reason,
                                 at=j.finished_at or j.created_at)
                     for j in s.scalars(jobs.order_by(TrainingJob.created_at.desc()).limit(RECENT_ERRORS))]
    except SQLAlchemyError as exc:
        log.warning("system: database unavailable: %s", exc)
        return []
    epoch = datetime.min.replace(tzinfo=timezone.utc)
    return sorted(rows, key=lambda e: e.at or epoch, reverse=True)[:RECENT_ERRORS]


@router.get("/system", response_model=SystemStatus)
async def system(user: CurrentUser, settings: Settings) -> SystemStatus:
    """Health of every service, queue depths, model-server tokens/s, memory and recent failures (never a 500)."""
    database = await run_in_threadpool(check_database)
    redis_state, worker, trainer = await run_in_threadpool(check_redis_and_services)
    inference = await check_inference(settings.inference_url)
    counts = await run_in_threadpool(_instances)
    services = [_service("gateway", "ok"), _service("database", database), _service("redis", redis_state),
                _service("worker", worker, counts["worker"]), _service("trainer", trainer, counts["trainer"]),
                _service("inference", inference)]
    degraded = any(sv.status in ("down", "unknown") for sv in services if sv.name in ESSENTIAL)
    user_id, admin = user.id, user.is_admin
    return SystemStatus(
        status="degraded" if degraded else "ok", services=services, queues=await run_in_threadpool(_queues, settings),
        model_server=await _model_server(settings.inference_url), memory=await run_in_threadpool(_memory),
        recent_errors=await run_in_threadpool(_recent_errors, user_id, admin),
        checked_at=datetime.now(timezone.utc))
