"""REST endpoints for training jobs (the trainer does the work; see services/trainer/pipeline.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from services.gateway.deps import DB, AdminUser, CurrentUser, Settings
from services.trainer.dataset import completion_for
from services.worker.agent.miniwob import html_dir
from sparkpilot import registry, training
from sparkpilot.db.models import RunStatus
from sparkpilot.errors import InvalidInput
from sparkpilot.queue import enqueue_job
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import Page, TrainingJobCreate, TrainingJobPublic, TrainingMetrics
from sparkpilot.trajectory import TrajectoryFilter, iter_records

router = APIRouter(prefix="/api/v1/training", tags=["training"])


def _check_tasks(tasks: list[str] | None, what: str) -> None:
    known = html_dir() / "miniwob"
    unknown = [t for t in tasks or [] if not (known / f"{t}.html").is_file()]
    if unknown:
        raise InvalidInput(f"{what}: unknown MiniWoB task(s) {', '.join(unknown)}", code="unknown_task")


def _has_examples(db: DB, body: TrainingJobCreate) -> bool:
    """True as soon as one recorded step matching the dataset filter would make a training example."""
    spec = body.dataset.runs
    flt = TrajectoryFilter(status=RunStatus.succeeded, policy=None if spec.policy == "all" else spec.policy,
                           min_reward=spec.min_reward, model=spec.model, tasks=spec.tasks, since=spec.since,
                           until=spec.until)
    return any(completion_for(record) is not None for record in iter_records(db, flt))


@router.post("/jobs", status_code=201, response_model=TrainingJobPublic)
def create_job(body: TrainingJobCreate, db: DB, user: AdminUser, settings: Settings) -> TrainingJobPublic:
    """Queue a training job (admin: it writes the model registry); 422 with the reason and nothing stored if unfit."""
    _check_tasks(body.eval.tasks, "eval.tasks")
    _check_tasks(body.dataset.runs.tasks, "dataset.runs.tasks")
    if body.name == settings.inference_model:
        raise InvalidInput(f"{body.name!r} is the base model's name; name the adapter something else", code="bad_name")
    if body.base:
        registry.resolve(db, body.base)  # 404 for an unknown adapter
    if not _has_examples(db, body):
        raise InvalidInput("the dataset filter matches no usable training step (successful, rewarded runs)",
                           code="empty_dataset")
    get_redis().ping()  # 503 before anything is stored
    job = training.create_job(db, user, body)
    db.commit()
    try:
        enqueue_job(job.id)
    except Exception:
        db.delete(job)
        db.commit()
        raise
    return TrainingJobPublic.model_validate(job)


@router.get("/jobs", response_model=Page[TrainingJobPublic])
def list_jobs(db: DB, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50,
              offset: Annotated[int, Query(ge=0)] = 0) -> Page[TrainingJobPublic]:
    """Training jobs, newest first (an admin sees every job)."""
    rows, total = training.list_jobs(db, user, limit, offset)
    return Page(items=[TrainingJobPublic.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=TrainingJobPublic)
def get_job(job_id: str, db: DB, user: CurrentUser) -> TrainingJobPublic:
    """One job: status, phase, live progress (step, loss, eta), the adapter it produced, the reason it ended."""
    return TrainingJobPublic.model_validate(training.get_job(db, job_id, user))


@router.post("/jobs/{job_id}/cancel", response_model=TrainingJobPublic)
def cancel_job(job_id: str, db: DB, user: AdminUser) -> TrainingJobPublic:
    """Cancel a queued job now, or a running one at its next step; 409 if it already ended."""
    job = training.request_cancel(db, job_id, user)
    db.commit()
    return TrainingJobPublic.model_validate(job)


@router.get("/jobs/{job_id}/metrics", response_model=TrainingMetrics)
def job_metrics(job_id: str, db: DB, user: CurrentUser) -> TrainingMetrics:
    """The loss curve, the data's make-up, the eval table (candidate vs current) and the gate's verdict."""
    job = training.get_job(db, job_id, user)
    m = job.metrics or {}
    train = m.get("train") or {}
    return TrainingMetrics(job_id=job.id, loss=train.get("loss") or (job.progress or {}).get("loss_curve") or [],
                           val_loss=train.get("val_loss"), prepare=m.get("prepare") or {},
                           eval=m.get("evaluate") or {}, gate=m.get("publish") or {},
                           minutes={k: v["minutes"] for k, v in m.items() if isinstance(v, dict) and "minutes" in v})
