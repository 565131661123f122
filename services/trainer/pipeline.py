"""Executing one training job: lock, claim (or resume), the phases not done yet, a terminal state with a reason."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis
from redis.exceptions import LockError

from services.trainer.phases import PHASE_FUNCTIONS, JobCancelled, PhaseFailed
from sparkpilot import training
from sparkpilot.db.models import PHASES, JobStatus, TrainingJob
from sparkpilot.db.session import session_scope
from sparkpilot.errors import SparkpilotError
from sparkpilot.metrics import TRAINING_LOSS, TRAINING_PHASE_SECONDS
from sparkpilot.redis_client import get_redis
from sparkpilot.settings import TrainerSettings, get_trainer_settings

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
LOCK_TTL_S = 60


def load_job(job_id: str) -> TrainingJob:
    """The job as a detached snapshot (phases read it outside any session)."""
    with session_scope() as s:
        job = s.get(TrainingJob, job_id)
        assert job is not None
        s.refresh(job)
        s.expunge(job)
        return job


class _LockKeeper(threading.Thread):
    """Extends the job's Redis lock while the job runs (phases take minutes)."""

    def __init__(self, lock: Any) -> None:
        super().__init__(daemon=True, name="job-lock")
        self.lock, self.stop = lock, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(LOCK_TTL_S / 3):
            try:
                self.lock.extend(LOCK_TTL_S, replace_ttl=True)
            except (LockError, redis.RedisError) as exc:
                log.warning("job lock not extended: %s", exc)


def execute_job(job_id: str, settings: TrainerSettings | None = None) -> str:
    """Run the job's remaining phases; returns its final status (or why it was not run)."""
    settings = settings or get_trainer_settings()
    lock = get_redis().lock(settings.key("job", job_id, "lock"), timeout=LOCK_TTL_S, blocking_timeout=LOCK_TTL_S + 2,
                            thread_local=False)
    if not lock.acquire():
        return "locked"
    keeper = _LockKeeper(lock)
    keeper.start()
    try:
        with session_scope() as s:
            claimed = training.claim_job(s, job_id, f"{socket.gethostname()}:{os.getpid()}", MAX_ATTEMPTS)
        if claimed is None:
            return "skipped"
        return _run_phases(job_id, settings)
    finally:
        keeper.stop.set()
        try:
            lock.release()
        except (LockError, redis.RedisError):
            pass


def _run_phases(job_id: str, settings: TrainerSettings) -> str:
    def progress(**values: Any) -> bool:
        if values.get("loss") is not None:
            TRAINING_LOSS.set(get_redis(), job_id, float(values["loss"]))
        with session_scope() as s:
            return training.set_progress(s, job_id, **values)

    phase = "prepare"
    try:
        for phase in PHASES:
            job = load_job(job_id)
            if phase in job.done_phases:
                continue
            if job.cancel_requested:
                raise JobCancelled()
            with session_scope() as s:
                training.start_phase(s, job_id, phase)
            log.info("job %s: %s", job_id, phase)
            t0 = time.perf_counter()
            metrics = PHASE_FUNCTIONS[phase](job, settings, progress)
            metrics["minutes"] = round((time.perf_counter() - t0) / 60, 2)
            TRAINING_PHASE_SECONDS.observe(get_redis(), time.perf_counter() - t0, phase)
            with session_scope() as s:
                training.phase_done(s, job_id, phase, metrics)
        reason = load_job(job_id).metrics["publish"]["reason"]
        status, why = JobStatus.succeeded, reason
    except JobCancelled:
        status, why = JobStatus.cancelled, training.CANCELLED
    except (PhaseFailed, SparkpilotError) as exc:
        status, why = JobStatus.failed, f"{phase}: {exc.message}"
    except Exception as exc:  # noqa: BLE001 - the job must end with a reason, whatever broke
        log.exception("job %s crashed in %s", job_id, phase)
        status, why = JobStatus.failed, f"{phase}: internal error: {type(exc).__name__}: {exc}"
    with session_scope() as s:
        training.finish_job(s, job_id, status, why)
    return status.value
