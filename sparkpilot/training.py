"""Training jobs' lifecycle: create, list, cancel, claim (or resume), progress, finish. Plain functions on a session.

The trainer's pipeline (services/trainer/pipeline.py) does the work; the gateway and the CLI only
call these. A job's `done_phases` is its checkpoint: a re-queued job skips what is done.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from sparkpilot.db.models import JOB_TERMINAL, JobStatus, RunStatus, TrainingJob, User, utcnow
from sparkpilot.errors import Conflict, InvalidInput, NotFound
from sparkpilot.events import add_job_event
from sparkpilot.schemas import TrainingJobCreate
from sparkpilot.trajectory import TrajectoryFilter

CANCELLED = "cancelled by user"


def runs_filter(session: Session, spec: dict[str, Any], owner_id: int) -> TrajectoryFilter:
    """The trajectory filter of a job's `dataset.runs` spec: successful runs of the named users only (the owner's
    when none are named); 422 for a user name nobody has."""
    names = spec.get("users")
    if names:
        found = dict(session.execute(select(User.name, User.id).where(User.name.in_(names))).all())
        unknown = sorted(set(names) - set(found))
        if unknown:
            raise InvalidInput(f"dataset.runs.users: no user called {', '.join(map(repr, unknown))}", code="unknown_user")
        user_ids = sorted(found.values())
    else:
        user_ids = [owner_id]
    return TrajectoryFilter(status=RunStatus.succeeded,
                            policy=None if spec.get("policy") == "all" else spec.get("policy", "model"),
                            min_reward=spec.get("min_reward"), model=spec.get("model"), tasks=spec.get("tasks"),
                            since=as_utc(spec.get("since")), until=as_utc(spec.get("until")), user_ids=user_ids)


def as_utc(value: Any) -> datetime | None:
    """A datetime from its ISO form (as a job spec stores it), UTC when it names no zone; None stays None."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def create_job(session: Session, user: User, body: TrainingJobCreate) -> TrainingJob:
    """Insert a queued job (the caller commits, then enqueues)."""
    job = TrainingJob(user_id=user.id, name=body.name, method=body.method, dataset=body.dataset.model_dump(mode="json"),
                      base=body.base, hyperparameters=body.hyperparameters.model_dump(), eval=body.eval.model_dump(mode="json"),
                      promote=body.promote, done_phases=[], progress={}, metrics={})
    session.add(job)
    session.flush()
    add_job_event(session, job.id, "job.queued", {"name": job.name, "method": job.method})
    return job


def get_job(session: Session, job_id: str, user: User | None = None) -> TrainingJob:
    """A job by id, visible only to its owner when `user` is given (admins see every job)."""
    job = session.get(TrainingJob, job_id)
    if job is None or (user is not None and not user.is_admin and job.user_id != user.id):
        raise NotFound(f"training job {job_id!r} not found", code="job_not_found")
    return job


def list_jobs(session: Session, user: User, limit: int, offset: int) -> tuple[list[TrainingJob], int]:
    """A page of the user's jobs (every job for an admin), newest first, and the total."""
    where = [] if user.is_admin else [TrainingJob.user_id == user.id]
    total = session.scalar(select(func.count()).select_from(TrainingJob).where(*where)) or 0
    rows = session.scalars(select(TrainingJob).where(*where).order_by(TrainingJob.created_at.desc(), TrainingJob.id)
                           .limit(limit).offset(offset))
    return list(rows), total


def _transition(session: Session, job_id: str, allowed: set[JobStatus], *where: object, **values: object) -> bool:
    res = session.execute(update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.status.in_(allowed), *where)
                          .values(**values))
    return res.rowcount == 1


def finish_job(session: Session, job_id: str, status: JobStatus, reason: str) -> bool:
    """Move a live job to a terminal status; False if it had already ended."""
    assert status in JOB_TERMINAL
    if not _transition(session, job_id, {JobStatus.queued, JobStatus.running}, status=status, reason=reason,
                       finished_at=utcnow()):
        return False
    add_job_event(session, job_id, f"job.{status.value}", {"reason": reason})  # type: ignore[arg-type]
    return True


def request_cancel(session: Session, job_id: str, user: User) -> TrainingJob:
    """Cancel a queued job now, or ask the trainer to stop a running one at its next check (between phases and steps)."""
    job = get_job(session, job_id, user)
    if job.status in JOB_TERMINAL:
        raise Conflict(f"training job {job_id} already {job.status.value}", code="job_finished")
    if _transition(session, job_id, {JobStatus.queued}, status=JobStatus.cancelled, reason=CANCELLED,
                   finished_at=utcnow()):
        add_job_event(session, job_id, "job.cancelled", {"reason": CANCELLED})
    else:  # running: the trainer stops at its next check and ends the job itself
        _transition(session, job_id, {JobStatus.running}, cancel_requested=True)
    session.refresh(job)
    return job


def claim_job(session: Session, job_id: str, worker: str, max_attempts: int) -> TrainingJob | None:
    """Take a queued job, or resume a running one whose trainer died (the caller holds the job's lock)."""
    job = session.get(TrainingJob, job_id)
    if job is None or job.status in JOB_TERMINAL:
        return None
    now = utcnow()
    if job.status is JobStatus.running and job.attempts >= max_attempts:
        finish_job(session, job_id, JobStatus.failed, f"trainer lost ({job.attempts} attempts)")
        return None
    if not _transition(session, job_id, {JobStatus.queued, JobStatus.running}, status=JobStatus.running,
                       started_at=job.started_at or now, heartbeat_at=now, worker=worker,
                       attempts=TrainingJob.attempts + 1):
        return None
    session.refresh(job)
    add_job_event(session, job_id, "job.started", {"worker": worker, "attempt": job.attempts,
                                                   "resumed_after": list(job.done_phases)})
    return job


def start_phase(session: Session, job_id: str, phase: str) -> None:
    """Mark `phase` as the one running."""
    job = session.get(TrainingJob, job_id)
    assert job is not None
    job.phase = phase
    add_job_event(session, job_id, "job.phase", {"phase": phase})


def set_progress(session: Session, job_id: str, **progress: Any) -> bool:
    """Record live progress (phase, step, loss, eta); returns whether cancellation was requested."""
    job = session.get(TrainingJob, job_id)
    if job is None:
        return True
    old = job.progress or {}
    changed = {k: v for k, v in progress.items() if old.get(k) != v and k != "loss_curve"}
    job.progress = {**old, **progress}
    job.heartbeat_at = utcnow()
    session.flush()
    if changed:  # polling loops report the same figures every second; the stream gets only news
        add_job_event(session, job_id, "job.progress", {k: v for k, v in job.progress.items() if k != "loss_curve"})
    return job.cancel_requested


def phase_done(session: Session, job_id: str, phase: str, metrics: dict[str, Any]) -> None:
    """Checkpoint: `phase` will not run again for this job; its metrics are kept."""
    job = session.get(TrainingJob, job_id)
    assert job is not None
    if phase not in job.done_phases:
        job.done_phases = [*job.done_phases, phase]
    job.metrics = {**(job.metrics or {}), phase: metrics}
    session.flush()
    add_job_event(session, job_id, "job.phase_done", {"phase": phase, "minutes": metrics.get("minutes")})
