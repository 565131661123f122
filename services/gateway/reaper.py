"""Background loop in the gateway that ends runs whose worker died, and plans nobody approved in time."""

from __future__ import annotations

import asyncio
import logging

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sparkpilot import plans, runs
from sparkpilot.db.models import JobStatus, Run, RunStatus, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.errors import Unavailable
from sparkpilot.events import publish
from sparkpilot.queue import enqueue_job, enqueue_run
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import GatewaySettings

log = logging.getLogger(__name__)


def reap_once(stale_after_s: float, max_attempts: int = 1) -> int:
    """One sweep: requeue, fail or cancel runs with a stale heartbeat, end expired plan waits; how many it touched."""
    with session_scope() as s:
        events, requeued = runs.reap_stale_runs(s, stale_after_s, max_attempts)
        events += plans.expire_plan_waits(s)
    publish(get_redis(), events)
    for ev in events:
        log.warning("run %s: %s by the reaper", ev.run_id, ev.payload.get("reason"))
    for run_id in requeued:
        enqueue_run(run_id)  # Unavailable (Redis down) leaves it queued: the QueueGuard re-sends it
    return len(events)


class QueueGuard:
    """Re-sends every queued run and training job when Redis restarted (its `run_id` changed).

    A Redis without persistence loses its queues on a restart, so those runs would wait forever.
    Re-sending is safe with one that kept them: the run's lock and claim drop a second delivery.
    """

    def __init__(self) -> None:
        self.redis_run_id: str | None = None
        self.resend = False  # a send failed: re-send every queued run at the next look

    def check(self) -> int:
        """One look at Redis; how many runs and jobs were sent again (0 unless Redis restarted)."""
        current = str(get_redis().info("server")["run_id"])
        if self.redis_run_id is None:
            self.redis_run_id = current
        if current == self.redis_run_id and not self.resend:
            return 0
        with session_scope() as s:
            run_ids = list(s.scalars(select(Run.id).where(Run.status == RunStatus.queued)))
            job_ids = list(s.scalars(select(TrainingJob.id).where(TrainingJob.status == JobStatus.queued)))
        for run_id in run_ids:
            enqueue_run(run_id)
        for job_id in job_ids:
            enqueue_job(job_id)
        self.redis_run_id, self.resend = current, False  # only once all were sent: a failure sends them all again
        log.warning("%d queued runs and %d queued training jobs sent again (Redis restarted or a send failed)",
                    len(run_ids), len(job_ids))
        return len(run_ids) + len(job_ids)


async def reaper_loop(settings: GatewaySettings) -> None:
    """Sweep forever every `reaper_interval_s`."""
    guard = QueueGuard()
    while True:
        try:
            await run_in_threadpool(reap_once, settings.run_stale_after_s, settings.max_attempts)
        except SQLAlchemyError as exc:
            log.warning("reaper: database unavailable: %s", exc)
        except Unavailable as exc:
            guard.resend = True
            log.warning("reaper: a run could not be queued again: %s", exc.message)
        try:
            await run_in_threadpool(guard.check)
        except (redis.RedisError, OSError, Unavailable, SQLAlchemyError) as exc:
            log.debug("reaper: queue check skipped: %s", exc)
        await asyncio.sleep(settings.reaper_interval_s)
