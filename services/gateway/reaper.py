"""Background loop in the gateway that ends runs whose worker died, and plans nobody approved in time."""

from __future__ import annotations

import asyncio
import logging

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from sparkpilot import plans, queue, runs
from sparkpilot.db.models import JobStatus, Run, RunStatus, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.errors import Unavailable
from sparkpilot.events import publish
from sparkpilot.queue import enqueue_job, enqueue_run
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import GatewaySettings

log = logging.getLogger(__name__)


def reap_once(stale_after_s: float, max_attempts: int = 1, queue_name: str | None = None) -> int:
    """One sweep: requeue, fail or cancel runs with a stale heartbeat, end expired plan waits, send again the
    queued runs whose message a dead worker took; how many it touched."""
    with session_scope() as s:
        events, requeued = runs.reap_stale_runs(s, stale_after_s, max_attempts)
        events += plans.expire_plan_waits(s)
    publish(get_redis(), events)
    for ev in events:
        log.warning("run %s: %s by the reaper", ev.run_id, ev.payload.get("reason"))
    for run_id in requeued:
        enqueue_run(run_id)  # Unavailable (Redis down) leaves it queued: the QueueGuard re-sends it
    return len(events) + (resend_stranded(queue_name, stale_after_s, set(requeued)) if queue_name else 0)


def resend_stranded(queue_name: str, stale_after_s: float, sent: set[str] | None = None) -> int:
    """Send again each queued run whose message a worker took `stale_after_s` ago and never started (it died in
    between); the run's lock and conditional claim drop a second delivery if that worker was alive after all.
    Runs in `sent` (just handed back by the reaper) only lose their dead worker's delivery: they are on the queue."""
    sent = set(sent or ())
    client = get_redis()
    try:
        stranded = queue.stranded_runs(client, queue_name, stale_after_s)
    except redis.RedisError as exc:  # Redis is down: nothing can be sent now; the QueueGuard re-sends once it is back
        log.debug("reaper: stranded messages not checked: %s", exc)
        return 0
    if not stranded:
        return 0
    with session_scope() as s:
        waiting = set(s.scalars(select(Run.id).where(Run.id.in_(set(stranded.values())), Run.status == RunStatus.queued)))
    resent = 0
    for tag, run_id in stranded.items():
        if run_id in waiting:
            if run_id not in sent:
                enqueue_run(run_id)  # Unavailable goes to the loop, which has the QueueGuard send every queued run
                log.warning("run %s: its message was taken by a worker that never started it; sent again", run_id)
                sent.add(run_id)
                resent += 1
            try:
                queue.forget_delivery(client, tag)
            except redis.RedisError as exc:  # a second delivery later is dropped by the run's claim anyway
                log.debug("reaper: delivery %s not forgotten: %s", tag, exc)
    return resent


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
            await run_in_threadpool(reap_once, settings.run_stale_after_s, settings.max_attempts, settings.queue_name)
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
