"""REST endpoints for training jobs (the trainer does the work; see services/trainer/pipeline.py)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from services.gateway.deps import AdminUser, CurrentUser, DB, Offset, Settings
from services.trainer.dataset import completion_for
from agent.miniwob import html_dir
from sparkpilot import audit, registry, training
from sparkpilot.db.models import TrainingDataset, User
from sparkpilot.errors import InvalidInput, NotFound
from sparkpilot.queue import enqueue_job
from sparkpilot.redis_client import get_redis
from sparkpilot.schemas import DatasetPublic, Paginated, TrainingJobCreate, TrainingJobPublic, TrainingMetrics
from sparkpilot.trajectory import iter_records, parse_upload, read_jsonl

router = APIRouter(prefix="/api/v1/training", tags=["training"])


def _check_tasks(tasks: list[str] | None, what: str) -> None:
    known = html_dir() / "miniwob"
    unknown = [t for t in tasks or [] if not (known / f"{t}.html").is_file()]
    if unknown:
        raise InvalidInput(f"{what}: unknown MiniWoB task(s) {', '.join(unknown)}", code="unknown_task")


def _has_examples(db: DB, body: TrainingJobCreate, user: User) -> bool:
    """True as soon as one step of the job's data would make a training example (404 for an unknown dataset)."""
    if body.dataset.dataset_id:
        row = db.get(TrainingDataset, body.dataset.dataset_id)
        if row is None or (row.user_id != user.id and not user.is_admin):
            raise NotFound(f"dataset {body.dataset.dataset_id!r} not found", code="dataset_not_found")
        return any(completion_for(record) is not None for record in read_jsonl(Path(row.path)))
    flt = training.runs_filter(db, body.dataset.runs.model_dump(), user.id)
    return any(completion_for(record) is not None for record in iter_records(db, flt))


@router.post("/jobs", status_code=201, response_model=TrainingJobPublic)
def create_job(body: TrainingJobCreate, db: DB, user: AdminUser, settings: Settings) -> TrainingJobPublic:
    """Queue a training job (admin: it writes the model registry); 422 with the reason and nothing stored if unfit."""
    _check_tasks(body.eval.tasks, "eval.tasks")
    _check_tasks(body.dataset.runs.tasks if body.dataset.runs else None, "dataset.runs.tasks")
    if body.name == settings.inference_model:
        raise InvalidInput(f"{body.name!r} is the base model's name; name the adapter something else", code="bad_name")
    if body.base:
        registry.resolve(db, body.base)  # 404 for an unknown adapter
    if not _has_examples(db, body, user):
        raise InvalidInput("the job's data holds no usable training step (successful, rewarded, parsed)",
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
    audit.record(db, user, "training_job.created", "training_job", job.id, name=job.name, method=body.method)
    db.commit()
    return TrainingJobPublic.model_validate(job)


@router.post("/datasets", status_code=201, response_model=DatasetPublic)
async def upload_dataset(request: Request, db: DB, user: CurrentUser, settings: Settings,
                         name: Annotated[str, Query(min_length=1, max_length=100)] = "upload") -> DatasetPublic:
    """Upload a JSONL of trajectory records (the body); 422 naming the first bad line, and nothing is stored then."""
    try:
        records = parse_upload(await request.body())
    except ValueError as exc:
        raise InvalidInput(str(exc), code="bad_dataset") from None
    row = TrainingDataset(user_id=user.id, name=name, path="", records=len(records))
    db.add(row)
    db.flush()
    path = settings.workspace_dir / "training" / "datasets" / f"{row.id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(r.model_dump_json() + "\n" for r in records))
    tmp.replace(path)
    row.path = str(path)
    db.commit()
    return DatasetPublic.model_validate(row)


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(db: DB, user: CurrentUser) -> list[DatasetPublic]:
    """The user's uploaded datasets (every one for an admin), newest first."""
    query = select(TrainingDataset).order_by(TrainingDataset.created_at.desc())
    if not user.is_admin:
        query = query.where(TrainingDataset.user_id == user.id)
    return [DatasetPublic.model_validate(r) for r in db.scalars(query)]


@router.get("/jobs", response_model=Paginated[TrainingJobPublic])
def list_jobs(db: DB, user: CurrentUser, limit: Annotated[int, Query(ge=1, le=200)] = 50,
              offset: Offset = 0) -> Paginated[TrainingJobPublic]:
    """Training jobs, newest first (an admin sees every job)."""
    rows, total = training.list_jobs(db, user, limit, offset)
    return Paginated(items=[TrainingJobPublic.model_validate(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=TrainingJobPublic)
def get_job(job_id: str, db: DB, user: CurrentUser) -> TrainingJobPublic:
    """One job: status, phase, live progress (step, loss, eta), the adapter it produced, the reason it ended."""
    return TrainingJobPublic.model_validate(training.get_job(db, job_id, user))


@router.post("/jobs/{job_id}/cancel", response_model=TrainingJobPublic)
def cancel_job(job_id: str, db: DB, user: AdminUser) -> TrainingJobPublic:
    """Cancel a queued job now, or a running one at its next step; 409 if it already ended."""
    job = training.request_cancel(db, job_id, user)
    audit.record(db, user, "training_job.cancel_requested", "training_job", job_id)
    db.commit()
    return TrainingJobPublic.model_validate(job)


@router.get("/jobs/{job_id}/adapter", response_class=StreamingResponse)
def download_adapter(job_id: str, db: DB, user: CurrentUser) -> StreamingResponse:
    """The adapter the job produced, as a .tar.gz of its PEFT folder; 404 until it is registered."""
    job = training.get_job(db, job_id, user)
    if not job.adapter:
        raise NotFound(f"training job {job_id} has no adapter yet (phase {job.phase})", code="adapter_not_ready")
    row = registry.resolve(db, job.adapter)
    folder = Path(row.path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=row.served_name.replace("@", "-"))
    buf.seek(0)
    name = row.served_name.replace("@", "-") + ".tar.gz"
    return StreamingResponse(buf, media_type="application/gzip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/jobs/{job_id}/metrics", response_model=TrainingMetrics)
def job_metrics(job_id: str, db: DB, user: CurrentUser) -> TrainingMetrics:
    """The loss curve, the data's make-up, the eval table (candidate vs current) and the gate's verdict."""
    job = training.get_job(db, job_id, user)
    m = job.metrics or {}
    train = m.get("train") or {}
    return TrainingMetrics(job_id=job.id, loss=train.get("loss") or (job.progress or {}).get("loss_curve") or [],
                           val_loss=train.get("val_loss"), prepare=m.get("prepare") or {},
                           train={k: v for k, v in train.items() if k not in ("loss", "adapter_dir", "minutes")},
                           eval=m.get("evaluate") or {}, gate=m.get("publish") or {},
                           minutes={k: v["minutes"] for k, v in m.items() if isinstance(v, dict) and "minutes" in v})
